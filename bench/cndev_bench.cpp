// BM_CndevSweep: one steady-state sweep of the cndev driver over 8 Cambricon MLUs served by the
// fake libcndev.so (tests/fakes/fake_cndev.c), loaded through the driver's real dlopen path:
// the control call that counts the MLUs, every CNDev call the driver makes per MLU (6), the
// per-MLU worker threads and their deadline wait, two processes' owners read from a procfs
// tree, and the catalog bookkeeping. BM_CndevSweepOneMlu is the same with one MLU.

#include <benchmark/benchmark.h>
#include <memory>
#include <sstream>
#include <string>

#include "fake_library_scenario.hpp"
#include "gridnode/drivers/cndev.hpp"

namespace gridnode::drivers {
namespace {

// The fake's scenario for the bench's devices, with two processes on them.
std::string scenario_text(int mlus) {
  std::ostringstream text;
  text << "mlus " << mlus << "\n"
      << "value * health 1\nvalue * board_temp 52\nvalue * chip_temp 61\nvalue * power_w 210\n"
      << "value * power_cap_w 250\nvalue * mem_total 49152\nvalue * mem_used 40000\n"
      << "value * util 88\nprocess 0 4242 1048576\nprocess 1 4243 1048576\n";
  return text.str();
}

void run(benchmark::State& state, int mlus) {
  if (std::string(GRIDNODE_FAKE_CNDEV).empty()) {
    state.SkipWithError("built without tests: no fake libcndev.so");
    return;
  }
  bench::FakeLibraryScenario scenario("cndev", "FAKE_CNDEV_SCENARIO",
                                      scenario_text(mlus));
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
