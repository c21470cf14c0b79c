#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gridnode/platform/result.hpp"

namespace gridnode::agent {

// A process that holds a context on an accelerator, as the driver library lists it
// (nvmlDeviceGetComputeRunningProcesses and friends).
struct AcceleratorProcess {
  pid_t pid = 0;
  std::uint32_t gpu = 0;  // the index dcgm-exporter's {gpu} label carries
  std::string uuid;
  std::uint64_t used_memory_bytes = 0;
};

// What the policy needs from the accelerators: who runs on them, and their power limit.
// Implemented over NVML by NvmlAcceleratorControl (nvml_accelerator_control.hpp), and by a fake
// in tests. Every call may block (NVML talks to the kernel driver): the policy engine calls
// them on its worker thread, one call at a time, never on the loop.
class AcceleratorControl {
 public:
  virtual ~AcceleratorControl() = default;
  // Whether list_processes() answers. False: the policy takes the processes from the
  // accelerator drivers' samples (gridnode_gpu_process_memory_used_bytes{gpu,UUID,pid}), which
  // costs no call of its own.
  virtual bool lists_processes() const { return true; }
  // Every process on every accelerator; no_such_file_or_directory when there are none here.
  [[nodiscard]] virtual platform::Result<std::vector<AcceleratorProcess>> list_processes() = 0;
  // The UUIDs of the accelerators, in index order (the position is dcgm-exporter's {gpu}
  // label): how a limit recorded by UUID finds its GPU after the indices changed (a GPU added
  // or removed). An empty string for a GPU whose UUID is not known. Errors:
  // resource_unavailable_try_again, as power_limit_mw's.
  [[nodiscard]] virtual platform::Result<std::vector<std::string>> gpu_uuids() = 0;
  // The power limit in force, in milliwatts. resource_unavailable_try_again: not known yet
  // (the accelerator driver has not found its GPUs); ask again after the next round.
  [[nodiscard]] virtual platform::Result<std::uint32_t> power_limit_mw(std::uint32_t gpu) = 0;
  // Errors: as power_limit_mw's, and whatever the library refuses (a value outside the GPU's
  // range, no permission), each with a message for the event's result.
  [[nodiscard]] virtual platform::Result<void> set_power_limit_mw(std::uint32_t gpu,
                                                                  std::uint32_t milliwatts) = 0;
};

}  // namespace gridnode::agent
