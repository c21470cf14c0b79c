#pragma once
// The set-up the accelerator benches share: a scenario file for a vendor's fake library (named
// to it by `env_var`, as the fakes read it) and a procfs tree with the two processes the
// scenarios put on the devices (pids 4242 and 4243, uid 1000, a Slurm job's cgroup), in a fresh
// directory under $TMPDIR removed at the end.

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace gridnode::bench {

class FakeLibraryScenario {
 public:
  FakeLibraryScenario(const std::string& name, const char* env_var, const std::string& scenario) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/gn-" +
                       name + "-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::abort();
    }
    root_ = tmpl;
    std::ofstream(root_ + "/scenario") << scenario;
    for (int pid : {4242, 4243}) {
      std::string dir = root_ + "/proc/" + std::to_string(pid);
      std::filesystem::create_directories(dir);
      std::ofstream(dir + "/status") << "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n";
      std::ofstream(dir + "/cgroup") << "0::/slurm/uid_1000/job_" << pid << "\n";
    }
    ::setenv(env_var, (root_ + "/scenario").c_str(), 1);
  }
  ~FakeLibraryScenario() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  FakeLibraryScenario(const FakeLibraryScenario&) = delete;
  FakeLibraryScenario& operator=(const FakeLibraryScenario&) = delete;

  std::string procfs() const { return root_ + "/proc"; }

 private:
  std::string root_;
};

}  // namespace gridnode::bench
