#pragma once

#include <memory>
#include <string>

#include "accelerator/dl_library.hpp"
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

class Library {
 public:
  // no_such_file_or_directory when dlopen fails; function_not_supported when a required entry
  // point is missing (a CNDev without device handles: older than the header's).
  [[nodiscard]] static platform::Result<std::shared_ptr<const Library>> open(
      const std::string& path);
  const Api& api() const { return api_; }
  const std::string& path() const { return dl_->path(); }

 private:
  explicit Library(std::unique_ptr<accelerators::DlLibrary> dl) : dl_(std::move(dl)) {}
  std::unique_ptr<accelerators::DlLibrary> dl_;
  Api api_;
};

platform::Error cndev_error(int code, std::string context);

}  // namespace gridnode::drivers::cndev
