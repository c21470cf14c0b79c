#pragma once

#include <memory>
#include <string>

#include "accelerator/vendor_library.hpp"
#include "ascend/dcmi_abi.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::ascend {

// The entry points found in libdcmi.so. The first four are required (DCMI 2's discovery:
// without them there is no card or chip to name); every other one may be null, and the field
// it feeds is then absent.
struct Api {
  dcmi_init_fn init = nullptr;
  dcmi_get_card_list_fn get_card_list = nullptr;  // dcmi_get_card_num_list, else _card_list
  dcmi_get_device_num_in_card_fn get_device_num = nullptr;
  dcmi_get_device_logic_id_fn get_logic_id = nullptr;

  dcmi_get_device_phyid_from_logicid_fn get_phy_id = nullptr;
  dcmi_get_device_chip_info_fn get_chip_info = nullptr;
  dcmi_get_device_pcie_info_v2_fn get_pcie_info = nullptr;
  dcmi_get_device_die_v2_fn get_die = nullptr;
  dcmi_get_device_uint_fn get_health = nullptr;
  dcmi_get_device_errorcode_v2_fn get_errorcodes = nullptr;
  dcmi_get_device_int_fn get_temperature = nullptr;
  dcmi_get_device_int_fn get_power = nullptr;
  dcmi_get_device_uint_fn get_voltage = nullptr;
  dcmi_get_device_utilization_rate_fn get_utilization = nullptr;
  dcmi_get_device_frequency_fn get_frequency = nullptr;
  dcmi_get_device_hbm_info_fn get_hbm = nullptr;
  dcmi_get_device_memory_info_v3_fn get_memory = nullptr;
  dcmi_get_device_network_health_fn get_network_health = nullptr;
  dcmi_get_device_resource_info_fn get_processes = nullptr;
};

// libdcmi.so: its entry points, found by find_entry_points().
using Library = accelerators::VendorLibrary<Api>;

// Finds every entry point of `dl` into `a`; function_not_supported when a required one is
// missing (a DCMI older than 2.0).
[[nodiscard]] platform::Result<void> find_entry_points(const accelerators::DlLibrary& dl, Api& a);

// A DCMI return code as an Error: dcmi_category(), with `context` naming the call.
platform::Error dcmi_error(int code, std::string context);

}  // namespace gridnode::drivers::ascend
