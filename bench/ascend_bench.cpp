// BM_AscendSweep: one steady-state sweep of the ascend driver over 8 Ascend chips (4 cards of 2,
// an Atlas 800T A2's 8 NPUs) served by the fake libdcmi.so (tests/fakes/fake_dcmi.c), loaded
// through the driver's real dlopen path: the control call that counts the chips, every DCMI call
// the driver makes per chip (12), the per-chip worker threads and their deadline wait, two
// processes' owners read from a procfs tree, and the catalog bookkeeping. The fake answers at
// once, so this is the agent's own cost; a real DCMI adds the driver's ioctls.
// BM_AscendSweepOneChip is the same with one chip. Compare with nvml_bench's BM_NvmlSweep.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "gridnode/drivers/ascend.hpp"

namespace gridnode::drivers {
namespace {

namespace fs = std::filesystem;

class BenchScenario {
 public:
  BenchScenario(int cards, int per_card) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/gn-ascend-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::abort();
    }
    root_ = tmpl;
    std::ofstream s(root_ + "/scenario");
    s << "cards " << cards << " " << per_card << "\n"
      << "value * health 0\nvalue * temperature 47\nvalue * power 1835\nvalue * voltage 1250\n"
      << "value * util 63\nvalue * aicore_freq 1800\nvalue * hbm_total 65536\n"
      << "value * hbm_used 30000\nvalue * mem_total 32768\nvalue * mem_available 30000\n"
      << "value * network 0\nprocess 0 4242 31457280000\nprocess 1 4243 1073741824\n";
    for (int pid : {4242, 4243}) {
      fs::create_directories(root_ + "/proc/" + std::to_string(pid));
      std::ofstream(root_ + "/proc/" + std::to_string(pid) + "/status")
          << "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n";
      std::ofstream(root_ + "/proc/" + std::to_string(pid) + "/cgroup")
          << "0::/slurm/uid_1000/job_" << pid << "\n";
    }
    ::setenv("FAKE_DCMI_SCENARIO", (root_ + "/scenario").c_str(), 1);
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

void run(benchmark::State& state, int cards, int per_card) {
  if (std::string(GRIDNODE_FAKE_DCMI).empty()) {
    state.SkipWithError("built without tests: no fake libdcmi.so");
    return;
  }
  BenchScenario scenario(cards, per_card);
  AscendOptions options;
  options.library = GRIDNODE_FAKE_DCMI;
  options.roots.procfs = scenario.procfs();
  auto driver = make_ascend_driver(std::move(options));
  Sweep sweep;
  if (!driver->sweep(sweep)) {  // discovery
    state.SkipWithError("the fake DCMI did not initialise");
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

void BM_AscendSweep(benchmark::State& state) { run(state, 4, 2); }
void BM_AscendSweepOneChip(benchmark::State& state) { run(state, 1, 1); }
BENCHMARK(BM_AscendSweep)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AscendSweepOneChip)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace gridnode::drivers
