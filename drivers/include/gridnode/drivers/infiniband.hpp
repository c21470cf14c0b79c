#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter's infiniband collector, read under <sysfs>/class/infiniband/<device>:
//   node_infiniband_info{device,board_id,firmware_version,hca_type} 1   (hca_type "" if absent)
// and for every ports/<N>, with labels {device,port}:
//   node_infiniband_state_id            ports/N/state       "4: ACTIVE" -> 4
//   node_infiniband_physical_state_id   ports/N/phys_state  "5: LinkUp" -> 5
//   node_infiniband_rate_bytes_per_second ports/N/rate      "100 Gb/sec (4X EDR)" -> 12500000000
//   node_infiniband_<counter>_total     each file of ports/N/counters and counters_ext that
//                                       node_exporter knows (port_rcv_data -> port_data_
//                                       received_bytes_total, …), as the kernel wrote it; the
//                                       four data counters count 4-octet words (scale {4,0}).
// A counter that is absent, refused (EACCES; EOPNOTSUPP or EINVAL from its read, as some
// drivers answer for counters they lack) or "N/A (no PMA)" when the port is discovered is not
// exported, as procfs 0.8 skips it; one that becomes unreadable later is skipped and counted.
// A device missing board_id, fw_ver or its ports directory is skipped and counted, and so is a
// port's missing counters directory (its state and rate are still reported): node_exporter
// 1.5.0 fails the whole collector in each case.
struct InfinibandOptions {
  platform::Roots roots;
  // As ThermalOptions::keep_files_open: false reopens every file on every sweep.
  bool keep_files_open = true;
};

// Never fails; the first sweep() says whether <sysfs>/class/infiniband exists
// (no_such_file_or_directory when it does not).
std::unique_ptr<Driver> make_infiniband_driver(InfinibandOptions options);

}  // namespace gridnode::drivers
