#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <system_error>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// Cambricon MLUs (MLU370, MLU590, …) through CNDev (libcndev.so, dlopen'd), under Cambricon's
// mlu-exporter names (its default `mlu` prefix), units and labels (mlu = the device index,
// model, sn, uuid):
//   machine_mlu_nums, mlu_temperature (board, °C), mlu_chip_temperature (°C), mlu_power_usage
//   (W), mlu_memory_total / mlu_memory_used (B; CNDev's MB), mlu_utilization (%, the cores'
//   average), mlu_health (1 health, 0 sick), mlu_process_physical_memory_used{…,pid} (B).
// and ours: gridnode_mlu_up / gridnode_mlu_degraded, gridnode_gpu_process_memory_used_bytes
// {gpu=<mlu>,UUID=<uuid>,pid,uid,cgroup}, the summary gridnode_accelerators…{vendor="cambricon"}
// (headroom from the power cap CNDev reports). A health change and a lost MLU become events.
// docs/accelerators.md has the mapping.
struct CndevOptions {
  platform::Roots roots;  // procfs: the owners of the MLUs' processes
  std::string library = "libcndev.so";
  std::chrono::milliseconds call_timeout{1000};
};

// As make_ascend_driver: loads nothing here; absent without the library or MLUs.
std::unique_ptr<Driver> make_cndev_driver(CndevOptions options);

// CNDev's cndevRet_t as std::error_code: message() is the header's name for the value.
const std::error_category& cndev_category();

}  // namespace gridnode::drivers
