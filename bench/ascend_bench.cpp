// BM_AscendSweep: one steady-state sweep of the ascend driver over 8 Ascend chips (4 cards of 2,
// an Atlas 800T A2's 8 NPUs) served by the fake libdcmi.so (tests/fakes/fake_dcmi.c), loaded
// through the driver's real dlopen path: the control call that counts the chips, every DCMI call
// the driver makes per chip (12), the per-chip worker threads and their deadline wait, two
// processes' owners read from a procfs tree, and the catalog bookkeeping. The fake answers at
// once, so this is the agent's own cost; a real DCMI adds the driver's ioctls.
// BM_AscendSweepOneChip is the same with one chip. Compare with nvml_bench's BM_NvmlSweep.

#include <benchmark/benchmark.h>
#include <memory>
#include <sstream>
#include <string>

#include "fake_library_scenario.hpp"
#include "gridnode/drivers/ascend.hpp"

namespace gridnode::drivers {
namespace {

// The fake's scenario for the bench's devices, with two processes on them.
std::string scenario_text(int cards, int per_card) {
  std::ostringstream text;
  text << "cards " << cards << " " << per_card << "\n"
      << "value * health 0\nvalue * temperature 47\nvalue * power 1835\nvalue * voltage 1250\n"
      << "value * util 63\nvalue * aicore_freq 1800\nvalue * hbm_total 65536\n"
      << "value * hbm_used 30000\nvalue * mem_total 32768\nvalue * mem_available 30000\n"
      << "value * network 0\nprocess 0 4242 31457280000\nprocess 1 4243 1073741824\n";
  return text.str();
}

void run(benchmark::State& state, int cards, int per_card) {
  if (std::string(GRIDNODE_FAKE_DCMI).empty()) {
    state.SkipWithError("built without tests: no fake libdcmi.so");
    return;
  }
  bench::FakeLibraryScenario scenario("ascend", "FAKE_DCMI_SCENARIO",
                                      scenario_text(cards, per_card));
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
