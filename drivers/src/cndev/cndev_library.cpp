#include "cndev/cndev_library.hpp"

#include "gridnode/drivers/cndev.hpp"

namespace gridnode::drivers {
namespace {

class CndevCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "cndev"; }
  std::string message(int code) const override {
    static constexpr const char* kNames[] = {"success",
                                             "no driver",
                                             "low driver version",
                                             "unsupported API version",
                                             "uninitialized",
                                             "invalid argument",
                                             "invalid device id",
                                             "unknown error",
                                             "malloc failed",
                                             "insufficient space",
                                             "not supported",
                                             "invalid link",
                                             "no devices",
                                             "no permission",
                                             "not found",
                                             "in use",
                                             "duplicate",
                                             "timeout",
                                             "device in problem"};
    if (code >= 0 && code < static_cast<int>(std::size(kNames))) {
      return kNames[code];
    }
    return "CNDev error " + std::to_string(code);
  }
};

}  // namespace

const std::error_category& cndev_category() {
  static const CndevCategory category;
  return category;
}

namespace cndev {

platform::Error cndev_error(int code, std::string context) {
  return platform::Error{std::error_code(code, cndev_category()), std::move(context)};
}

platform::Result<void> find_entry_points(const accelerators::DlLibrary& dl, Api& a) {
  dl.find("cndevInit", a.init);
  dl.find("cndevGetDeviceCount", a.get_count);
  dl.find("cndevGetDeviceHandleByIndex", a.get_handle);
  if (auto ok = dl.require({{"cndevInit", a.init != nullptr},
                            {"cndevGetDeviceCount", a.get_count != nullptr},
                            {"cndevGetDeviceHandleByIndex", a.get_handle != nullptr}},
                           "a CNDev older than the device-handle API? cnmon version says");
      !ok) {
    return tl::unexpected(ok.error());
  }
  dl.find("cndevRelease", a.release);
  dl.find("cndevGetTemperatureInfo", a.get_temperature);
  dl.find("cndevGetMemoryUsageV2", a.get_memory);
  dl.find("cndevGetDeviceUtilizationInfo", a.get_utilization);
  dl.find("cndevGetUUID", a.get_uuid);
  dl.find("cndevGetCardSN", a.get_sn);
  dl.find("cndevGetCardNameStringByDevId", a.get_name);
  dl.find("cndevGetProcessInfo", a.get_processes);
  dl.find("cndevGetCardHealthState", a.get_health);
  dl.find("cndevGetDevicePowerInfo", a.get_power);
  return {};
}

}  // namespace cndev
}  // namespace gridnode::drivers
