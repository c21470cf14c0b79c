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

platform::Result<std::shared_ptr<const Library>> Library::open(const std::string& path) {
  auto dl = accelerators::DlLibrary::open(path);
  if (!dl) {
    return tl::unexpected(dl.error());
  }
  std::shared_ptr<Library> lib(new Library(std::move(*dl)));
  const accelerators::DlLibrary& h = *lib->dl_;
  Api& a = lib->api_;
  h.find("cndevInit", a.init);
  h.find("cndevGetDeviceCount", a.get_count);
  h.find("cndevGetDeviceHandleByIndex", a.get_handle);
  if (auto ok = h.require({{"cndevInit", a.init != nullptr},
                           {"cndevGetDeviceCount", a.get_count != nullptr},
                           {"cndevGetDeviceHandleByIndex", a.get_handle != nullptr}},
                          "a CNDev older than the device-handle API? cnmon version says");
      !ok) {
    return tl::unexpected(ok.error());
  }
  h.find("cndevRelease", a.release);
  h.find("cndevGetTemperatureInfo", a.get_temperature);
  h.find("cndevGetMemoryUsageV2", a.get_memory);
  h.find("cndevGetDeviceUtilizationInfo", a.get_utilization);
  h.find("cndevGetUUID", a.get_uuid);
  h.find("cndevGetCardSN", a.get_sn);
  h.find("cndevGetCardNameStringByDevId", a.get_name);
  h.find("cndevGetProcessInfo", a.get_processes);
  h.find("cndevGetCardHealthState", a.get_health);
  h.find("cndevGetDevicePowerInfo", a.get_power);
  return std::shared_ptr<const Library>(std::move(lib));
}

}  // namespace cndev
}  // namespace gridnode::drivers
