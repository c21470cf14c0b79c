#include "nvml/nvml_library.hpp"

#include <dlfcn.h>

#include <string_view>

#include "gridnode/drivers/nvml.hpp"

namespace gridnode::drivers {
namespace {

class NvmlCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "nvml"; }
  // nvml.h's descriptions, so that a message does not depend on the library being loaded
  // (nvmlErrorString needs it) and is the same from every driver version.
  std::string message(int code) const override {
    switch (code) {
      case 0:
        return "Success";
      case 1:
        return "Uninitialized";
      case 2:
        return "Invalid Argument";
      case 3:
        return "Not Supported";
      case 4:
        return "Insufficient Permissions";
      case 5:
        return "Already Initialized";
      case 6:
        return "Not Found";
      case 7:
        return "Insufficient Size";
      case 8:
        return "Insufficient External Power";
      case 9:
        return "Driver Not Loaded";
      case 10:
        return "Timeout";
      case 11:
        return "Interrupt Request Issue";
      case 12:
        return "NVML Shared Library Not Found";
      case 13:
        return "Function Not Found";
      case 14:
        return "Corrupted infoROM";
      case 15:
        return "GPU is lost";
      case 16:
        return "GPU requires restart";
      case 17:
        return "The operating system has blocked the request";
      case 18:
        return "RM has detected an NVML/RM version mismatch";
      case 19:
        return "In use by another client";
      case 20:
        return "Insufficient Memory";
      case 21:
        return "No data";
      case 22:
        return "The requested vgpu operation is not available on target device, because ECC is "
               "enabled";
      case 23:
        return "Insufficient resources";
      case 24:
        return "Frequency not supported";
      case 25:
        return "Argument version mismatch";
      case 26:
        return "Deprecated";
      case 27:
        return "Not Ready";
      case 28:
        return "GPU not found";
      case 29:
        return "Invalid state";
      case 999:
        return "Unknown Error";
      default:
        return "NVML error " + std::to_string(code);
    }
  }
};

}  // namespace

const std::error_category& nvml_category() {
  static const NvmlCategory category;
  return category;
}

namespace nvml {

platform::Error nvml_error(nvmlReturn_t code, std::string context) {
  return platform::Error{std::error_code(code, nvml_category()), std::move(context)};
}

namespace {

template <class Fn>
void find(void* handle, const char* symbol, Fn& out) {
  // POSIX guarantees that a data pointer from dlsym converts to a function pointer.
  out = reinterpret_cast<Fn>(::dlsym(handle, symbol));
}

template <class Fn>
void find_either(void* handle, const char* newer, const char* older, Fn& out) {
  find(handle, newer, out);
  if (out == nullptr) {
    find(handle, older, out);
  }
}

}  // namespace

platform::Result<std::shared_ptr<const Library>> Library::open(const std::string& path) {
  ::dlerror();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return platform::fail(std::errc::no_such_file_or_directory,
                          why != nullptr ? std::string(why) : path + ": cannot be loaded");
  }
  std::shared_ptr<Library> lib(new Library(handle, path));
  Api& a = lib->api_;
  find(handle, "nvmlInit_v2", a.init);
  find(handle, "nvmlShutdown", a.shutdown);
  find(handle, "nvmlErrorString", a.error_string);
  find(handle, "nvmlDeviceGetCount_v2", a.get_count);
  find(handle, "nvmlDeviceGetHandleByIndex_v2", a.get_handle);
  for (auto [ok, name] : {std::pair{a.init != nullptr, "nvmlInit_v2"},
                          {a.shutdown != nullptr, "nvmlShutdown"},
                          {a.error_string != nullptr, "nvmlErrorString"},
                          {a.get_count != nullptr, "nvmlDeviceGetCount_v2"},
                          {a.get_handle != nullptr, "nvmlDeviceGetHandleByIndex_v2"}}) {
    if (!ok) {
      return platform::fail(std::errc::function_not_supported,
                            path + ": no " + name + " (NVIDIA driver older than r325?)");
    }
  }
  find(handle, "nvmlSystemGetDriverVersion", a.driver_version);
  find(handle, "nvmlDeviceGetName", a.get_name);
  find(handle, "nvmlDeviceGetUUID", a.get_uuid);
  find(handle, "nvmlDeviceGetPciInfo_v3", a.get_pci);
  find(handle, "nvmlDeviceGetMinorNumber", a.get_minor);
  find(handle, "nvmlDeviceGetTemperature", a.get_temperature);
  find(handle, "nvmlDeviceGetFieldValues", a.get_field_values);
  find(handle, "nvmlDeviceGetPowerUsage", a.get_power_usage);
  find(handle, "nvmlDeviceGetTotalEnergyConsumption", a.get_total_energy);
  find(handle, "nvmlDeviceGetEnforcedPowerLimit", a.get_power_limit);
  find(handle, "nvmlDeviceGetClockInfo", a.get_clock);
  find(handle, "nvmlDeviceGetUtilizationRates", a.get_utilization);
  find(handle, "nvmlDeviceGetEncoderUtilization", a.get_encoder);
  find(handle, "nvmlDeviceGetDecoderUtilization", a.get_decoder);
  find(handle, "nvmlDeviceGetMemoryInfo_v2", a.get_memory_v2);
  find(handle, "nvmlDeviceGetMemoryInfo", a.get_memory);
  find(handle, "nvmlDeviceGetPcieReplayCounter", a.get_pcie_replay);
  find(handle, "nvmlDeviceGetTotalEccErrors", a.get_ecc);
  find(handle, "nvmlDeviceGetRetiredPages", a.get_retired);
  find(handle, "nvmlDeviceGetRetiredPagesPendingStatus", a.get_retired_pending);
  find(handle, "nvmlDeviceGetRemappedRows", a.get_remapped_rows);
  find_either(handle, "nvmlDeviceGetCurrentClocksEventReasons",
              "nvmlDeviceGetCurrentClocksThrottleReasons", a.get_clock_reasons);
  find(handle, "nvmlDeviceGetFanSpeed", a.get_fan);
  find(handle, "nvmlDeviceGetPerformanceState", a.get_pstate);
  find(handle, "nvmlDeviceGetMigMode", a.get_mig_mode);
  // _v3 and _v2 fill the same nvmlProcessInfo_t; the unversioned (v1) one has a shorter struct
  // and is not used.
  find_either(handle, "nvmlDeviceGetComputeRunningProcesses_v3",
              "nvmlDeviceGetComputeRunningProcesses_v2", a.get_processes);
  find(handle, "nvmlEventSetCreate", a.event_set_create);
  find(handle, "nvmlDeviceRegisterEvents", a.register_events);
  find(handle, "nvmlEventSetWait_v2", a.event_set_wait);
  find(handle, "nvmlEventSetFree", a.event_set_free);
  find(handle, "nvmlDeviceGetPowerManagementLimit", a.get_power_management_limit);
  find(handle, "nvmlDeviceGetPowerManagementDefaultLimit", a.get_power_default_limit);
  find(handle, "nvmlDeviceGetPowerManagementLimitConstraints", a.get_power_constraints);
  find(handle, "nvmlDeviceSetPowerManagementLimit", a.set_power_limit);
  return std::shared_ptr<const Library>(std::move(lib));
}

Library::~Library() {
  if (handle_ != nullptr) {
    ::dlclose(handle_);
  }
}

}  // namespace nvml
}  // namespace gridnode::drivers
