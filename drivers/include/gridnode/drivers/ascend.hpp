#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <system_error>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// Huawei Ascend NPUs (910B, 310P, …) through DCMI (libdcmi.so, dlopen'd), under Huawei's
// npu-exporter (MindCluster) names, units and labels (id = the chip's physical id, model_name,
// vdie_id, pcie_bus_info):
//   machine_npu_nums, npu_chip_info_utilization (AI Core, %), npu_chip_info_hbm_used_memory /
//   _hbm_total_memory (MB), npu_chip_info_used_memory / _total_memory (DDR, MB),
//   npu_chip_info_temperature (°C), npu_chip_info_power (W, DCMI's 0.1 W kept exact),
//   npu_chip_info_voltage (V, DCMI's 0.01 V kept exact), npu_chip_info_health_status (1
//   healthy, 0 not), npu_chip_info_error_code (the first code DCMI reports, 0 for none),
//   npu_chip_info_network_status (1 healthy, 0 not), npu_chip_info_aicore_current_freq (MHz).
// and ours, as the nvml driver's:
//   gridnode_npu_up / gridnode_npu_degraded{id,…}, gridnode_gpu_process_memory_used_bytes
//   {gpu=<id>,UUID=<vdie_id>,pid,uid,cgroup} (the policy's who-may-use rule reads these), and
//   the node summary gridnode_accelerators…{vendor="huawei"}. DCMI has no power limit: power
//   headroom is 0 for Ascend, and a policy's cap_power on an npu_ metric is refused at load.
// Health changes, new error codes and lost chips become Sweep::events. docs/accelerators.md
// has the whole mapping.
struct AscendOptions {
  platform::Roots roots;  // procfs: the uid and cgroup of the chips' processes
  // What dlopen() is given: a bare soname goes through the loader's search path (the Ascend
  // driver installs it under /usr/local/Ascend/driver/lib64/driver/: name that path where the
  // loader's path lacks it).
  std::string library = "libdcmi.so";
  // Every DCMI call runs on a worker thread; one not back after this long marks its chip
  // degraded (or, for discovery, fails the sweep), and the sweep goes on without it.
  std::chrono::milliseconds call_timeout{1000};
};

// Never fails and never loads the library here: the first sweep() does. A host without
// libdcmi.so or without chips gets no_such_file_or_directory (absent); a DCMI older than 2.0
// (a required entry point missing) is function_not_supported; a failing or hung dcmi_init
// fails the sweep (down), each with one log line.
std::unique_ptr<Driver> make_ascend_driver(AscendOptions options);

// DCMI's return codes as std::error_code: message() is the header's name for the value.
const std::error_category& dcmi_category();

// Whether the policy's cap_power can act on `metric`'s accelerators: false for the vendors
// whose library offers no power-limit control (Ascend's npu_ metrics) or whose control gridnode
// does not drive (Cambricon's mlu_ metrics), with `why` for the
// error; true for everything else (NVIDIA's are checked when the cap is applied).
bool accelerator_power_capable(std::string_view metric, std::string* why);

}  // namespace gridnode::drivers
