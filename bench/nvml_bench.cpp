// BM_NvmlSweep: one steady-state sweep of the nvml driver over 8 GPUs served by the fake
// libnvidia-ml.so.1 (tests/fakes/fake_nvml.c), loaded through the driver's real dlopen path:
// every NVML call the driver makes per GPU (about 30), the per-GPU worker threads and their
// deadline wait, two processes' owners read from a procfs tree, and the catalog bookkeeping.
// The fake answers at once, so this is the agent's own cost; a real driver adds the kernel's.
// BM_NvmlSweepOneGpu is the same with one GPU.
// BM_NvmlPowerLimitSet: one cap_power step through NvmlPower (constraints read, then the
// setter, on its worker thread with the deadline wait), alternating two limits on GPU 0; to
// compare with BM_NvmlSweepOneGpu, measured in the same run.

#include <benchmark/benchmark.h>
#include <memory>
#include <sstream>
#include <string>

#include "fake_library_scenario.hpp"
#include "gridnode/drivers/nvml.hpp"

namespace gridnode::drivers {
namespace {

// The fake's scenario for the bench's devices, with two processes on them.
std::string scenario_text(int gpus) {
  std::ostringstream text;
  text << "gpus " << gpus << "\n"
      << "value * gpu_temp 41\nvalue * mem_temp 38\nvalue * power_mw 312512\n"
      << "value * energy_mj 123456789012\nvalue * power_limit_mw 700000\n"
      << "value * sm_clock 1980\nvalue * mem_clock 2619\nvalue * util_gpu 97\n"
      << "value * util_mem 45\nvalue * enc 0\nvalue * dec 0\nvalue * fb_total 85520809984\n"
      << "value * fb_reserved 666894336\nvalue * fb_used 42949672960\n"
      << "value * fb_free 41904242688\nvalue * pcie_replay 0\nvalue * ecc_sbe_vol 0\n"
      << "value * ecc_dbe_vol 0\nvalue * ecc_sbe_agg 0\nvalue * ecc_dbe_agg 0\n"
      << "value * retired_sbe 0\nvalue * retired_dbe 0\nvalue * retired_pending 0\n"
      << "value * remap_corr 0\nvalue * remap_unc 0\nvalue * remap_pending 0\n"
      << "value * remap_failure 0\nvalue * clock_reasons 0\nvalue * fan 0\nvalue * pstate 0\n"
      << "value * mig 0\nprocess 0 4242 42949672960\nprocess 1 4243 1073741824\n";
  return text.str();
}

void run(benchmark::State& state, int gpus) {
  if (std::string(GRIDNODE_FAKE_NVML).empty()) {
    state.SkipWithError("built without tests: no fake libnvidia-ml.so.1");
    return;
  }
  bench::FakeLibraryScenario scenario("nvml", "FAKE_NVML_SCENARIO",
                                      scenario_text(gpus));
  NvmlOptions options;
  options.library = GRIDNODE_FAKE_NVML;
  options.roots.procfs = scenario.procfs();
  options.hostname = "bench";
  auto driver = make_nvml_driver(std::move(options));
  Sweep sweep;
  if (!driver->sweep(sweep)) {  // discovery
    state.SkipWithError("the fake NVML did not initialise");
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

void BM_NvmlSweep(benchmark::State& state) { run(state, 8); }
void BM_NvmlSweepOneGpu(benchmark::State& state) { run(state, 1); }
BENCHMARK(BM_NvmlSweep)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_NvmlSweepOneGpu)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_NvmlPowerLimitSet(benchmark::State& state) {
  if (std::string(GRIDNODE_FAKE_NVML).empty()) {
    state.SkipWithError("built without tests: no fake libnvidia-ml.so.1");
    return;
  }
  bench::FakeLibraryScenario scenario("nvml", "FAKE_NVML_SCENARIO",
                                      scenario_text(1));
  NvmlOptions options;
  options.library = GRIDNODE_FAKE_NVML;
  options.roots.procfs = scenario.procfs();
  options.hostname = "bench";
  options.power = std::make_shared<NvmlPower>();
  auto power = options.power;
  auto driver = make_nvml_driver(std::move(options));
  Sweep sweep;
  if (!driver->sweep(sweep)) {  // discovery publishes the GPU
    state.SkipWithError("the fake NVML did not initialise");
    return;
  }
  std::uint32_t mw = 250000;
  for (auto _ : state) {
    if (!power->set_limit_mw(0, mw)) {
      state.SkipWithError("set_limit_mw failed");
      return;
    }
    mw = mw == 250000 ? 700000 : 250000;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NvmlPowerLimitSet)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace gridnode::drivers
