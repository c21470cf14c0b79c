#include "nvml/nvml_library.hpp"

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

platform::Result<std::shared_ptr<const Library>> Library::open(const std::string& path) {
  auto dl = accelerators::DlLibrary::open(path);
  if (!dl) {
    return tl::unexpected(dl.error());
  }
  std::shared_ptr<Library> lib(new Library(std::move(*dl)));
  const accelerators::DlLibrary& handle = *lib->dl_;
  Api& a = lib->api_;
  handle.find("nvmlInit_v2", a.init);
  handle.find("nvmlShutdown", a.shutdown);
  handle.find("nvmlErrorString", a.error_string);
  handle.find("nvmlDeviceGetCount_v2", a.get_count);
  handle.find("nvmlDeviceGetHandleByIndex_v2", a.get_handle);
  if (auto ok = handle.require({{"nvmlInit_v2", a.init != nullptr},
                                {"nvmlShutdown", a.shutdown != nullptr},
                                {"nvmlErrorString", a.error_string != nullptr},
                                {"nvmlDeviceGetCount_v2", a.get_count != nullptr},
                                {"nvmlDeviceGetHandleByIndex_v2", a.get_handle != nullptr}},
                               "NVIDIA driver older than r325?");
      !ok) {
    return tl::unexpected(ok.error());
  }
  handle.find("nvmlSystemGetDriverVersion", a.driver_version);
  handle.find("nvmlDeviceGetName", a.get_name);
  handle.find("nvmlDeviceGetUUID", a.get_uuid);
  handle.find("nvmlDeviceGetPciInfo_v3", a.get_pci);
  handle.find("nvmlDeviceGetMinorNumber", a.get_minor);
  handle.find("nvmlDeviceGetTemperature", a.get_temperature);
  handle.find("nvmlDeviceGetFieldValues", a.get_field_values);
  handle.find("nvmlDeviceGetPowerUsage", a.get_power_usage);
  handle.find("nvmlDeviceGetTotalEnergyConsumption", a.get_total_energy);
  handle.find("nvmlDeviceGetEnforcedPowerLimit", a.get_power_limit);
  handle.find("nvmlDeviceGetClockInfo", a.get_clock);
  handle.find("nvmlDeviceGetUtilizationRates", a.get_utilization);
  handle.find("nvmlDeviceGetEncoderUtilization", a.get_encoder);
  handle.find("nvmlDeviceGetDecoderUtilization", a.get_decoder);
  handle.find("nvmlDeviceGetMemoryInfo_v2", a.get_memory_v2);
  handle.find("nvmlDeviceGetMemoryInfo", a.get_memory);
  handle.find("nvmlDeviceGetPcieReplayCounter", a.get_pcie_replay);
  handle.find("nvmlDeviceGetTotalEccErrors", a.get_ecc);
  handle.find("nvmlDeviceGetRetiredPages", a.get_retired);
  handle.find("nvmlDeviceGetRetiredPagesPendingStatus", a.get_retired_pending);
  handle.find("nvmlDeviceGetRemappedRows", a.get_remapped_rows);
  handle.find_either("nvmlDeviceGetCurrentClocksEventReasons",
              "nvmlDeviceGetCurrentClocksThrottleReasons", a.get_clock_reasons);
  handle.find("nvmlDeviceGetFanSpeed", a.get_fan);
  handle.find("nvmlDeviceGetPerformanceState", a.get_pstate);
  handle.find("nvmlDeviceGetMigMode", a.get_mig_mode);
  // _v3 and _v2 fill the same nvmlProcessInfo_t; the unversioned (v1) one has a shorter struct
  // and is not used.
  handle.find_either("nvmlDeviceGetComputeRunningProcesses_v3",
              "nvmlDeviceGetComputeRunningProcesses_v2", a.get_processes);
  handle.find("nvmlEventSetCreate", a.event_set_create);
  handle.find("nvmlDeviceRegisterEvents", a.register_events);
  handle.find("nvmlEventSetWait_v2", a.event_set_wait);
  handle.find("nvmlEventSetFree", a.event_set_free);
  handle.find("nvmlDeviceGetPowerManagementLimit", a.get_power_management_limit);
  handle.find("nvmlDeviceGetPowerManagementDefaultLimit", a.get_power_default_limit);
  handle.find("nvmlDeviceGetPowerManagementLimitConstraints", a.get_power_constraints);
  handle.find("nvmlDeviceSetPowerManagementLimit", a.set_power_limit);
  return std::shared_ptr<const Library>(std::move(lib));
}

}  // namespace nvml
}  // namespace gridnode::drivers
