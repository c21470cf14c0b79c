#pragma once
// A nats-server with JetStream for one test or benchmark: loopback only, its own store in a fresh
// temporary directory, ports it picks itself (-p -1, read back from its ports file), stopped by
// its PID and its directory removed at destruction. Header-only: the benchmarks use it too.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>

#include <nlohmann/json.hpp>

namespace gridnode::testing {

class NatsServer {
 public:
  static bool installed() { return std::system("command -v nats-server >/dev/null 2>&1") == 0; }

  NatsServer() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/gn-nats-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return;
    }
    dir_ = tmpl;
    const std::string store = dir_ + "/store";
    const std::string log = dir_ + "/log";
    pid_ = ::fork();
    if (pid_ == 0) {
      if (std::freopen(log.c_str(), "w", stderr) == nullptr) {
        ::_exit(126);
      }
      ::execlp("nats-server", "nats-server", "-js", "-sd", store.c_str(), "-a", "127.0.0.1", "-p",
               "-1", "--ports_file_dir", dir_.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const std::string ports = dir_ + "/nats-server_" + std::to_string(pid_) + ".ports";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(ports);
      auto j = nlohmann::json::parse(in, nullptr, false);
      if (!j.is_discarded() && j.contains("nats") && j["nats"].is_array() && !j["nats"].empty()) {
        url_ = j["nats"][0].get<std::string>();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~NatsServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  // nats://127.0.0.1:PORT, or "" when it did not start.
  const std::string& url() const { return url_; }
  pid_t pid() const { return pid_; }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  std::string url_;
};

}  // namespace gridnode::testing
