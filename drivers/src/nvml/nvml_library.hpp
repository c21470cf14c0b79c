#pragma once

#include <memory>
#include <string>

#include "accelerator/vendor_library.hpp"
#include "gridnode/platform/result.hpp"
#include "nvml/nvml_abi.hpp"

namespace gridnode::drivers::nvml {

// The entry points found in the library. The first five are required (without them there is
// no NVML to speak of); every other one may be null: an older driver lacks it, and the field
// it feeds is then absent.
struct Api {
  nvmlInit_v2_fn init = nullptr;
  nvmlShutdown_fn shutdown = nullptr;
  nvmlErrorString_fn error_string = nullptr;
  nvmlDeviceGetCount_v2_fn get_count = nullptr;
  nvmlDeviceGetHandleByIndex_v2_fn get_handle = nullptr;

  nvmlSystemGetDriverVersion_fn driver_version = nullptr;
  nvmlDeviceGetString_fn get_name = nullptr;
  nvmlDeviceGetString_fn get_uuid = nullptr;
  nvmlDeviceGetPciInfo_v3_fn get_pci = nullptr;
  nvmlDeviceGetUInt_fn get_minor = nullptr;
  nvmlDeviceGetTemperature_fn get_temperature = nullptr;
  nvmlDeviceGetFieldValues_fn get_field_values = nullptr;
  nvmlDeviceGetUInt_fn get_power_usage = nullptr;
  nvmlDeviceGetULL_fn get_total_energy = nullptr;
  nvmlDeviceGetUInt_fn get_power_limit = nullptr;  // nvmlDeviceGetEnforcedPowerLimit
  nvmlDeviceGetClockInfo_fn get_clock = nullptr;
  nvmlDeviceGetUtilizationRates_fn get_utilization = nullptr;
  nvmlDeviceGetCodecUtilization_fn get_encoder = nullptr;
  nvmlDeviceGetCodecUtilization_fn get_decoder = nullptr;
  nvmlDeviceGetMemoryInfo_v2_fn get_memory_v2 = nullptr;
  nvmlDeviceGetMemoryInfo_fn get_memory = nullptr;  // before r510: no `reserved`
  nvmlDeviceGetUInt_fn get_pcie_replay = nullptr;
  nvmlDeviceGetTotalEccErrors_fn get_ecc = nullptr;
  nvmlDeviceGetRetiredPages_fn get_retired = nullptr;
  nvmlDeviceGetRetiredPagesPendingStatus_fn get_retired_pending = nullptr;
  nvmlDeviceGetRemappedRows_fn get_remapped_rows = nullptr;
  // nvmlDeviceGetCurrentClocksEventReasons (r535+), else the older ...ThrottleReasons.
  nvmlDeviceGetULL_fn get_clock_reasons = nullptr;
  nvmlDeviceGetUInt_fn get_fan = nullptr;
  nvmlDeviceGetPerformanceState_fn get_pstate = nullptr;
  nvmlDeviceGetMigMode_fn get_mig_mode = nullptr;
  nvmlDeviceGetComputeRunningProcesses_fn get_processes = nullptr;  // _v3, else _v2
  nvmlEventSetCreate_fn event_set_create = nullptr;
  nvmlDeviceRegisterEvents_fn register_events = nullptr;
  nvmlEventSetWait_v2_fn event_set_wait = nullptr;
  nvmlEventSetFree_fn event_set_free = nullptr;
  // Power limits (NvmlPower): read by the policy's cap_power action, not by the sweep.
  nvmlDeviceGetUInt_fn get_power_management_limit = nullptr;
  nvmlDeviceGetUInt_fn get_power_default_limit = nullptr;
  nvmlDeviceGetPowerManagementLimitConstraints_fn get_power_constraints = nullptr;
  nvmlDeviceSetPowerManagementLimit_fn set_power_limit = nullptr;
};

// libnvidia-ml.so.1: its entry points, found by find_entry_points().
using Library = accelerators::VendorLibrary<Api>;

// Finds every entry point of `dl` into `a`; function_not_supported when a required one is
// missing (an NVIDIA driver older than r325).
[[nodiscard]] platform::Result<void> find_entry_points(const accelerators::DlLibrary& dl, Api& a);

// An NVML return code as an Error: nvml_category(), with `context` naming the call.
platform::Error nvml_error(nvmlReturn_t code, std::string context);

}  // namespace gridnode::drivers::nvml
