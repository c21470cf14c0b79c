#pragma once

#include <memory>
#include <string>

#include "accelerator/vendor_library.hpp"
#include "cndev/cndev_abi.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::cndev {

// The entry points found in libcndev.so; the first three are required.
struct Api {
  cndevInit_fn init = nullptr;
  cndevGetDeviceCount_fn get_count = nullptr;
  cndevGetDeviceHandleByIndex_fn get_handle = nullptr;

  cndevRelease_fn release = nullptr;
  cndevGetTemperatureInfo_fn get_temperature = nullptr;
  cndevGetMemoryUsageV2_fn get_memory = nullptr;
  cndevGetDeviceUtilizationInfo_fn get_utilization = nullptr;
  cndevGetUUID_fn get_uuid = nullptr;
  cndevGetCardSN_fn get_sn = nullptr;
  cndevGetCardNameStringByDevId_fn get_name = nullptr;
  cndevGetProcessInfo_fn get_processes = nullptr;
  cndevGetCardHealthState_fn get_health = nullptr;
  cndevGetDevicePowerInfo_fn get_power = nullptr;
};

// libcndev.so: its entry points, found by find_entry_points().
using Library = accelerators::VendorLibrary<Api>;

// Finds every entry point of `dl` into `a`; function_not_supported when a required one is
// missing (a CNDev without device handles: older than the header's).
[[nodiscard]] platform::Result<void> find_entry_points(const accelerators::DlLibrary& dl, Api& a);

platform::Error cndev_error(int code, std::string context);

}  // namespace gridnode::drivers::cndev
