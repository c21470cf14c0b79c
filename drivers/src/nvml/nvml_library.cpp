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

platform::Result<void> find_entry_points(const accelerators::DlLibrary& dl, Api& a) {
  dl.find("nvmlInit_v2", a.init);
  dl.find("nvmlShutdown", a.shutdown);
  dl.find("nvmlErrorString", a.error_string);
  dl.find("nvmlDeviceGetCount_v2", a.get_count);
  dl.find("nvmlDeviceGetHandleByIndex_v2", a.get_handle);
  if (auto ok = dl.require({{"nvmlInit_v2", a.init != nullptr},
                            {"nvmlShutdown", a.shutdown != nullptr},
                            {"nvmlErrorString", a.error_string != nullptr},
                            {"nvmlDeviceGetCount_v2", a.get_count != nullptr},
                            {"nvmlDeviceGetHandleByIndex_v2", a.get_handle != nullptr}},
                           "NVIDIA driver older than r325?");
      !ok) {
    return tl::unexpected(ok.error());
  }
  dl.find("nvmlSystemGetDriverVersion", a.driver_version);
  dl.find("nvmlDeviceGetName", a.get_name);
  dl.find("nvmlDeviceGetUUID", a.get_uuid);
  dl.find("nvmlDeviceGetPciInfo_v3", a.get_pci);
  dl.find("nvmlDeviceGetMinorNumber", a.get_minor);
  dl.find("nvmlDeviceGetTemperature", a.get_temperature);
  dl.find("nvmlDeviceGetFieldValues", a.get_field_values);
  dl.find("nvmlDeviceGetPowerUsage", a.get_power_usage);
  dl.find("nvmlDeviceGetTotalEnergyConsumption", a.get_total_energy);
  dl.find("nvmlDeviceGetEnforcedPowerLimit", a.get_power_limit);
  dl.find("nvmlDeviceGetClockInfo", a.get_clock);
  dl.find("nvmlDeviceGetUtilizationRates", a.get_utilization);
  dl.find("nvmlDeviceGetEncoderUtilization", a.get_encoder);
  dl.find("nvmlDeviceGetDecoderUtilization", a.get_decoder);
  dl.find("nvmlDeviceGetMemoryInfo_v2", a.get_memory_v2);
  dl.find("nvmlDeviceGetMemoryInfo", a.get_memory);
  dl.find("nvmlDeviceGetPcieReplayCounter", a.get_pcie_replay);
  dl.find("nvmlDeviceGetTotalEccErrors", a.get_ecc);
  dl.find("nvmlDeviceGetRetiredPages", a.get_retired);
  dl.find("nvmlDeviceGetRetiredPagesPendingStatus", a.get_retired_pending);
  dl.find("nvmlDeviceGetRemappedRows", a.get_remapped_rows);
  dl.find_either("nvmlDeviceGetCurrentClocksEventReasons",
                 "nvmlDeviceGetCurrentClocksThrottleReasons", a.get_clock_reasons);
  dl.find("nvmlDeviceGetFanSpeed", a.get_fan);
  dl.find("nvmlDeviceGetPerformanceState", a.get_pstate);
  dl.find("nvmlDeviceGetMigMode", a.get_mig_mode);
  // _v3 and _v2 fill the same nvmlProcessInfo_t; the unversioned (v1) one has a shorter struct
  // and is not used.
  dl.find_either("nvmlDeviceGetComputeRunningProcesses_v3",
                 "nvmlDeviceGetComputeRunningProcesses_v2", a.get_processes);
  dl.find("nvmlEventSetCreate", a.event_set_create);
  dl.find("nvmlDeviceRegisterEvents", a.register_events);
  dl.find("nvmlEventSetWait_v2", a.event_set_wait);
  dl.find("nvmlEventSetFree", a.event_set_free);
  dl.find("nvmlDeviceGetPowerManagementLimit", a.get_power_management_limit);
  dl.find("nvmlDeviceGetPowerManagementDefaultLimit", a.get_power_default_limit);
  dl.find("nvmlDeviceGetPowerManagementLimitConstraints", a.get_power_constraints);
  dl.find("nvmlDeviceSetPowerManagementLimit", a.set_power_limit);
  return {};
}

}  // namespace nvml
}  // namespace gridnode::drivers
