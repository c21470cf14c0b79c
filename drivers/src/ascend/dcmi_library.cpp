#include "ascend/dcmi_library.hpp"

#include "gridnode/drivers/ascend.hpp"

namespace gridnode::drivers {
namespace {

class DcmiCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "dcmi"; }
  // The header's names, so that a message does not depend on the library (DCMI has no
  // strerror of its own).
  std::string message(int code) const override {
    using namespace ascend;  // NOLINT: the header's names
    switch (code) {
      case DCMI_OK:
        return "DCMI_OK";
      case DCMI_ERR_CODE_INVALID_PARAMETER:
        return "invalid parameter";
      case DCMI_ERR_CODE_OPER_NOT_PERMITTED:
        return "operation not permitted";
      case DCMI_ERR_CODE_MEM_OPERATE_FAIL:
        return "memory operation failed";
      case DCMI_ERR_CODE_SECURE_FUN_FAIL:
        return "secure function failed";
      case DCMI_ERR_CODE_INNER_ERR:
        return "inner error";
      case DCMI_ERR_CODE_TIME_OUT:
        return "timed out";
      case DCMI_ERR_CODE_INVALID_DEVICE_ID:
        return "invalid device id";
      case DCMI_ERR_CODE_DEVICE_NOT_EXIST:
        return "device does not exist";
      case DCMI_ERR_CODE_IOCTL_FAIL:
        return "ioctl failed";
      case DCMI_ERR_CODE_SEND_MSG_FAIL:
        return "sending the message failed";
      case DCMI_ERR_CODE_RECV_MSG_FAIL:
        return "receiving the message failed";
      case DCMI_ERR_CODE_NOT_REDAY:
        return "not ready";
      case DCMI_ERR_CODE_NOT_SUPPORT_IN_CONTAINER:
        return "not supported in a container";
      case DCMI_ERR_CODE_FILE_OPERATE_FAIL:
        return "file operation failed";
      case DCMI_ERR_CODE_RESET_FAIL:
        return "reset failed";
      case DCMI_ERR_CODE_ABORT_OPERATE:
        return "operation aborted";
      case DCMI_ERR_CODE_IS_UPGRADING:
        return "upgrading";
      case DCMI_ERR_CODE_RESOURCE_OCCUPIED:
        return "resource occupied";
      case DCMI_ERR_CODE_PARTITION_NOT_RIGHT:
        return "partition not right";
      case DCMI_ERR_CODE_NOT_SUPPORT:
        return "not supported";
      default:
        return "DCMI error " + std::to_string(code);
    }
  }
};

}  // namespace

const std::error_category& dcmi_category() {
  static const DcmiCategory category;
  return category;
}

bool accelerator_power_capable(std::string_view metric, std::string* why) {
  if (metric.starts_with("npu_chip_info_") || metric.starts_with("gridnode_npu_") ||
      metric == "machine_npu_nums") {
    if (why != nullptr) {
      *why = std::string(metric) +
             " is a Huawei Ascend metric, and Ascend's DCMI has no power-limit control: "
             "cap_power cannot act on it (use action = \"report\")";
    }
    return false;
  }
  if (metric.starts_with("mlu_") || metric.starts_with("gridnode_mlu_") ||
      metric == "machine_mlu_nums") {
    if (why != nullptr) {
      *why = std::string(metric) +
             " is a Cambricon MLU metric, and gridnode does not set CNDev's power cap: "
             "cap_power cannot act on it (use action = \"report\")";
    }
    return false;
  }
  return true;
}

namespace ascend {

platform::Error dcmi_error(int code, std::string context) {
  return platform::Error{std::error_code(code, dcmi_category()), std::move(context)};
}

platform::Result<void> find_entry_points(const accelerators::DlLibrary& dl, Api& a) {
  dl.find("dcmi_init", a.init);
  // dcmi_get_card_num_list is DCMI 2's name; older 2.x releases export dcmi_get_card_list,
  // with the same signature.
  dl.find_either("dcmi_get_card_num_list", "dcmi_get_card_list", a.get_card_list);
  dl.find("dcmi_get_device_num_in_card", a.get_device_num);
  dl.find("dcmi_get_device_logic_id", a.get_logic_id);
  if (auto ok = dl.require({{"dcmi_init", a.init != nullptr},
                            {"dcmi_get_card_num_list", a.get_card_list != nullptr},
                            {"dcmi_get_device_num_in_card", a.get_device_num != nullptr},
                            {"dcmi_get_device_logic_id", a.get_logic_id != nullptr}},
                           "a DCMI older than 2.0? npu-smi info shows the driver's version");
      !ok) {
    return tl::unexpected(ok.error());
  }
  dl.find("dcmi_get_device_phyid_from_logicid", a.get_phy_id);
  dl.find("dcmi_get_device_chip_info", a.get_chip_info);
  dl.find("dcmi_get_device_pcie_info_v2", a.get_pcie_info);
  dl.find("dcmi_get_device_die_v2", a.get_die);
  dl.find("dcmi_get_device_health", a.get_health);
  dl.find("dcmi_get_device_errorcode_v2", a.get_errorcodes);
  dl.find("dcmi_get_device_temperature", a.get_temperature);
  dl.find("dcmi_get_device_power_info", a.get_power);
  dl.find("dcmi_get_device_voltage", a.get_voltage);
  dl.find("dcmi_get_device_utilization_rate", a.get_utilization);
  dl.find("dcmi_get_device_frequency", a.get_frequency);
  dl.find("dcmi_get_device_hbm_info", a.get_hbm);
  dl.find("dcmi_get_device_memory_info_v3", a.get_memory);
  dl.find("dcmi_get_device_network_health", a.get_network_health);
  dl.find("dcmi_get_device_resource_info", a.get_processes);
  return {};
}

}  // namespace ascend
}  // namespace gridnode::drivers
