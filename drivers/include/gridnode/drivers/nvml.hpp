#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

namespace nvml {
struct PowerState;  // drivers/src/nvml/nvml_power.hpp
}

// The power limits of the GPUs an nvml driver found, read and set through that driver's library
// and device handles (nvmlDeviceGetPowerManagementLimit / ...Constraints / ...DefaultLimit,
// nvmlDeviceSetPowerManagementLimit). The caller makes one and hands it to the driver
// (NvmlOptions::power); it answers once the driver's first sweep has discovered the GPUs.
// Thread-safe, and meant for a worker thread: each call runs on a thread of its own, one at a
// time, and waits at most the driver's call_timeout (the caller is blocked that long at worst).
class NvmlPower {
 public:
  struct Limits {
    std::uint32_t current_mw = 0;  // the configured limit (what the setter changes)
    std::uint32_t min_mw = 0;      // 0 and 0: the GPU does not say (no constraints)
    std::uint32_t max_mw = 0;
    std::uint32_t default_mw = 0;  // 0: unknown
  };

  NvmlPower();
  ~NvmlPower();
  NvmlPower(const NvmlPower&) = delete;
  NvmlPower& operator=(const NvmlPower&) = delete;

  // GPU `gpu`'s (dcgm-exporter's {gpu} index) limit and bounds. Errors as set_limit_mw's.
  [[nodiscard]] platform::Result<Limits> read_limits(std::uint32_t gpu);
  // Sets GPU `gpu`'s power management limit to `milliwatts`, after checking it against the
  // GPU's constraints: outside [min, max] is refused (invalid_argument naming the range), never
  // clamped. Errors: resource_unavailable_try_again (the driver has not discovered the GPUs
  // yet), no_such_device (no such GPU, or it was unusable at discovery), function_not_supported
  // (the library lacks the setter), timed_out (the call did not return within the deadline, or
  // an earlier one still has not), and NVML's own codes (nvml_category()) with a context that
  // says what to do: NO_PERMISSION (needs root or CAP_SYS_ADMIN), NOT_SUPPORTED, GPU_IS_LOST.
  [[nodiscard]] platform::Result<void> set_limit_mw(std::uint32_t gpu, std::uint32_t milliwatts);
  // The UUIDs of the GPUs the driver found, in index order ("" where discovery could not read
  // one), as its last discovery read them: no NVML call, never blocks on one. Errors:
  // resource_unavailable_try_again (the driver has not discovered the GPUs yet).
  [[nodiscard]] platform::Result<std::vector<std::string>> gpu_uuids();

  // The driver's side (drivers/src/nvml): where it publishes its library and GPUs.
  nvml::PowerState& state() { return *state_; }

 private:
  std::shared_ptr<nvml::PowerState> state_;
};

// NVIDIA GPUs through NVML, under dcgm-exporter's default counter names, units and labels
// (gpu, UUID, pci_bus_id, device="nvidia<minor>", modelName, Hostname, DCGM_FI_DRIVER_VERSION):
//   DCGM_FI_DEV_GPU_TEMP, DCGM_FI_DEV_MEMORY_TEMP (°C), DCGM_FI_DEV_POWER_USAGE (W, NVML's mW
//   kept exact), DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ), DCGM_FI_DEV_POWER_MGMT_LIMIT (W),
//   DCGM_FI_DEV_SM_CLOCK, DCGM_FI_DEV_MEM_CLOCK (MHz), DCGM_FI_DEV_GPU_UTIL,
//   DCGM_FI_DEV_MEM_COPY_UTIL, DCGM_FI_DEV_ENC_UTIL, DCGM_FI_DEV_DEC_UTIL (%),
//   DCGM_FI_DEV_FB_TOTAL / _FREE / _USED / _RESERVED (MiB), DCGM_FI_DEV_PCIE_REPLAY_COUNTER,
//   DCGM_FI_DEV_ECC_{SBE,DBE}_{VOL,AGG}_TOTAL, DCGM_FI_DEV_RETIRED_{SBE,DBE,PENDING},
//   DCGM_FI_DEV_{CORRECTABLE,UNCORRECTABLE}_REMAPPED_ROWS, DCGM_FI_DEV_ROW_REMAP_FAILURE,
//   DCGM_FI_DEV_CLOCKS_EVENT_REASONS (bit mask; DCGM_FI_DEV_CLOCK_THROTTLE_REASONS before DCGM
//   3.3), DCGM_FI_DEV_FAN_SPEED (%), DCGM_FI_DEV_PSTATE, DCGM_FI_DEV_MIG_MODE,
//   DCGM_FI_DEV_XID_ERRORS (the last XID seen).
// and ours:
//   gridnode_gpu_up{gpu,UUID,…}          1 while the GPU answers; 0 when it fell off the bus
//                                        (NVML_ERROR_GPU_IS_LOST) or a call hung
//   gridnode_gpu_degraded{gpu,UUID,…}    1 while a call to this GPU is past its deadline
//   gridnode_gpu_process_memory_used_bytes{gpu,UUID,pid,uid,cgroup}  running compute processes
//   gridnode_accelerators / _busy / _idle{vendor="nvidia"}, and
//   gridnode_accelerator_memory_free_bytes{vendor="nvidia"}: the node's summary for scheduling.
// A field the GPU or the library lacks (NOT_SUPPORTED, an entry point an older driver does not
// export) is absent. XID errors and lost GPUs also become Sweep::events.
struct NvmlOptions {
  platform::Roots roots;  // procfs: the uid and cgroup of the GPUs' processes
  // What dlopen() is given: a bare soname goes through the loader's search path.
  std::string library = "libnvidia-ml.so.1";
  // Every NVML call runs on a worker thread; one not back after this long marks its GPU
  // degraded (or, for a call that is not about one GPU, fails the sweep), and the sweep goes
  // on without it. That GPU is not asked again until the call returns.
  std::chrono::milliseconds call_timeout{1000};
  // The Hostname label, as dcgm-exporter sets it; empty: gethostname().
  std::string hostname;
  // Where the driver publishes its GPUs for power-limit control; null: nowhere.
  std::shared_ptr<NvmlPower> power = nullptr;
};

// Never fails and never loads the library here: the first sweep() does. A host without
// libnvidia-ml.so.1, without the NVIDIA kernel driver, or without GPUs gets
// no_such_file_or_directory (absent); a library/kernel version mismatch, no permission or a
// hung nvmlInit fail the sweep (down), each with one log line.
std::unique_ptr<Driver> make_nvml_driver(NvmlOptions options);

// NVML's nvmlReturn_t as std::error_code: message() is nvml.h's description of the value.
const std::error_category& nvml_category();

}  // namespace gridnode::drivers
