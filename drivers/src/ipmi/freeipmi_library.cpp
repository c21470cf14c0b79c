#include "ipmi/freeipmi_library.hpp"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace gridnode::drivers::ipmi {
namespace {

// Debian 12's sonames (FreeIPMI 1.6); RTLD_LOCAL keeps their symbols out of everyone's way.
constexpr const char* kFreeIpmi = "libfreeipmi.so.17";
constexpr const char* kIpmiMonitoring = "libipmimonitoring.so.6";

template <class T>
bool resolve(void* handle, const char* name, T& out, std::string& missing) {
  out = reinterpret_cast<T>(::dlsym(handle, name));
  if (out == nullptr && missing.empty()) {
    missing = name;
  }
  return out != nullptr;
}

platform::Result<const FreeIpmiLibrary*> load() {
  static FreeIpmiLibrary lib;  // trivially destructible: function and data pointers only
  void* freeipmi = ::dlopen(kFreeIpmi, RTLD_NOW | RTLD_LOCAL);
  if (freeipmi == nullptr) {
    const char* why = ::dlerror();
    return platform::fail(std::errc::no_such_file_or_directory,
                          std::string(kFreeIpmi) + " (Debian: libfreeipmi17): " +
                              (why != nullptr ? why : "not found"));
  }
  void* monitoring = ::dlopen(kIpmiMonitoring, RTLD_NOW | RTLD_LOCAL);
  if (monitoring == nullptr) {
    const char* why = ::dlerror();
    return platform::fail(std::errc::no_such_file_or_directory,
                          std::string(kIpmiMonitoring) + " (Debian: libipmimonitoring6): " +
                              (why != nullptr ? why : "not found"));
  }
  std::string missing;
#define GRIDNODE_RESOLVE_FREEIPMI(name) resolve(freeipmi, #name, lib.name, missing);
#define GRIDNODE_RESOLVE_MONITORING(name) resolve(monitoring, #name, lib.name, missing);
  GRIDNODE_FREEIPMI_FUNCTIONS(GRIDNODE_RESOLVE_FREEIPMI)
  GRIDNODE_IPMIMONITORING_FUNCTIONS(GRIDNODE_RESOLVE_MONITORING)
#undef GRIDNODE_RESOLVE_FREEIPMI
#undef GRIDNODE_RESOLVE_MONITORING
  resolve(freeipmi, "tmpl_cmd_get_chassis_status_rs", lib.tmpl_cmd_get_chassis_status_rs, missing);
  resolve(freeipmi, "tmpl_cmd_dcmi_get_power_reading_rs", lib.tmpl_cmd_dcmi_get_power_reading_rs,
          missing);
  resolve(freeipmi, "tmpl_cmd_get_sel_info_rs", lib.tmpl_cmd_get_sel_info_rs, missing);
  resolve(freeipmi, "ipmi_sensor_types", lib.ipmi_sensor_types, missing);
  resolve(freeipmi, "ipmi_oem_sensor_type", lib.ipmi_oem_sensor_type, missing);
  if (!missing.empty()) {
    return platform::fail(std::errc::function_not_supported,
                          std::string(kFreeIpmi) + "/" + kIpmiMonitoring + ": no symbol " + missing);
  }
  return &lib;
}

}  // namespace

platform::Result<const FreeIpmiLibrary*> freeipmi_library() {
  static std::once_flag once;
  static platform::Result<const FreeIpmiLibrary*>* loaded = nullptr;
  std::call_once(once, [] { loaded = new platform::Result<const FreeIpmiLibrary*>(load()); });
  return *loaded;
}

}  // namespace gridnode::drivers::ipmi
