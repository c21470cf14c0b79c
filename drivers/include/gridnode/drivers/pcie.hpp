#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// PCIe Advanced Error Reporting counters, which node_exporter lacks, read under
// <sysfs>/bus/pci/devices/<device> for every device with AER (the kernel shows the files only
// then), `device` its address ("0000:3b:00.0"), `severity` correctable, nonfatal or fatal:
//   gridnode_pcie_aer_errors_total{device,severity,error}   each "NAME COUNT" line of
//       aer_dev_correctable / aer_dev_nonfatal / aer_dev_fatal: errors of that type (RxErr,
//       BadTLP, …, CmpltTO, MalfTLP, …, as the kernel names them; an unnamed status bit that
//       counted appears as e.g. "dev_cor_errs_bit[4]")
//   gridnode_pcie_aer_messages_total{device,severity}       the file's TOTAL_ERR_COR /
//       TOTAL_ERR_NONFATAL / TOTAL_ERR_FATAL line: error messages the device reported (one
//       message can flag several error types, so it is not the sum of the above)
//   gridnode_pcie_aer_rootport_messages_total{device,severity}  a root port's
//       aer_rootport_total_err_cor / _nonfatal / _fatal: messages it received from below
// all counters. A file whose lines change (a bit that starts counting) is read again with a new
// catalog from the next sweep on; a line that does not parse is skipped and counted.
struct PcieOptions {
  platform::Roots roots;
  // As ThermalOptions::keep_files_open: false reopens every file on every sweep (three
  // descriptors per device otherwise).
  bool keep_files_open = true;
};

// Never fails; the first sweep() says whether <sysfs>/bus/pci/devices exists
// (no_such_file_or_directory when it does not).
std::unique_ptr<Driver> make_pcie_driver(PcieOptions options);

}  // namespace gridnode::drivers
