#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter's nvme collector, read under <sysfs>/class/nvme:
//   node_nvme_info{device,firmware_revision,model,serial,state} 1
// for every controller (nvme0, …), its labels the trimmed firmware_rev, model, serial and state
// files. The state file is read on every sweep: a controller that changes state ("live" ->
// "resetting", "dead") is reported under its new state from the next sweep on (the catalog is
// rebuilt), and one whose state file cannot be read has no sample. A controller with a label
// file missing is skipped and counted (node_exporter 1.5.0 fails the whole collector then).
struct NvmeOptions {
  platform::Roots roots;
  // As ThermalOptions::keep_files_open: false reopens every file on every sweep.
  bool keep_files_open = true;
};

// Never fails; the first sweep() says whether <sysfs>/class/nvme exists
// (no_such_file_or_directory when it does not).
std::unique_ptr<Driver> make_nvme_driver(NvmeOptions options);

}  // namespace gridnode::drivers
