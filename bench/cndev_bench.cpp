// BM_CndevSweep: one steady-state sweep of the cndev driver over 8 Cambricon MLUs served by the
// fake libcndev.so (tests/fakes/fake_cndev.c), loaded through the driver's real dlopen path:
// the control call that counts the MLUs, every CNDev call the driver makes per MLU (6), the
// per-MLU worker threads and their deadline wait, two processes' owners read from a procfs
// tree, and the catalog bookkeeping. BM_CndevSweepOneMlu is the same with one MLU.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "gridnode/drivers/cndev.hpp"

namespace gridnode::drivers {
namespace {

namespace fs = std::filesystem;

class BenchScenario {
 public:
  explicit BenchScenario(int mlus) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/gn-cndev-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::abort();
    }
    root_ = tmpl;
    std::ofstream s(root_ + "/scenario");
    s << "mlus " << mlus << "\n"
      << "value * health 1\nvalue * board_temp 52\nvalue * chip_temp 61\nvalue * power_w 210\n"
      << "value * power_cap_w 250\nvalue * mem_total 49152\nvalue * mem_used 40000\n"
      << "value * util 88\nprocess 0 4242 1048576\nprocess 1 4243 1048576\n";
    for (int pid : {4242, 4243}) {
      fs::create_directories(root_ + "/proc/" + std::to_string(pid));
      std::ofstream(root_ + "/proc/" + std::to_string(pid) + "/status")
          << "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n";
      std::ofstream(root_ + "/proc/" + std::to_string(pid) + "/cgroup")
          << "0::/slurm/uid_1000/job_" << pid << "\n";
    }
    ::setenv("FAKE_CNDEV_SCENARIO", (root_ + "/scenario").c_str(), 1);
  }
  ~BenchScenario() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  BenchScenario(const BenchScenario&) = delete;
  BenchScenario& operator=(const BenchScenario&) = delete;

  std::string procfs() const { return root_ + "/proc"; }

 private:
  std::string root_;
};

void run(benchmark::State& state, int mlus) {
  if (std::string(GRIDNODE_FAKE_CNDEV).empty()) {
    state.SkipWithError("built without tests: no fake libcndev.so");
    return;
  }
  BenchScenario scenario(mlus);
  CndevOptions options;
  options.library = GRIDNODE_FAKE_CNDEV;
  options.roots.procfs = scenario.procfs();
  auto driver = make_cndev_driver(std::move(options));
  Sweep sweep;
  if (!driver->sweep(sweep)) {  // discovery
    state.SkipWithError("the fake CNDev did not initialise");
    return;
  }
  std::size_t samples = 0;
  for (auto _ : state) {
    sweep.reset();
    if (!driver->sweep(sweep)) {
      state.SkipWithError("sweep failed");
      return;
    }
    samples += sweep.readings.size();
    benchmark::DoNotOptimize(sweep.readings.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(samples));
  state.counters["samples"] = static_cast<double>(sweep.readings.size());
}

void BM_CndevSweep(benchmark::State& state) { run(state, 8); }
void BM_CndevSweepOneMlu(benchmark::State& state) { run(state, 1); }
BENCHMARK(BM_CndevSweep)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CndevSweepOneMlu)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace gridnode::drivers
