#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter's edac collector, read under <sysfs>/devices/system/edac/mc:
//   node_edac_correctable_errors_total{controller}         mcN/ce_count
//   node_edac_uncorrectable_errors_total{controller}       mcN/ue_count
//   node_edac_csrow_correctable_errors_total{controller,csrow}
//       mcN/csrowM/ce_count, and mcN/ce_noinfo_count as csrow="unknown"
//   node_edac_csrow_uncorrectable_errors_total{controller,csrow}
//       likewise with ue_
// all counters, as the kernel wrote them. `controller` / `csrow` are the digits of mcN / csrowM.
// Unlike node_exporter 1.5.0, which drops the collector on the first unreadable file, a bad
// reading is skipped and counted; the rest are still reported.
struct EdacOptions {
  platform::Roots roots;
  // As ThermalOptions::keep_files_open: false reopens every file on every sweep.
  bool keep_files_open = true;
};

// Never fails; the first sweep() says whether <sysfs>/devices/system/edac/mc exists
// (no_such_file_or_directory when it does not: no EDAC driver loaded).
std::unique_ptr<Driver> make_edac_driver(EdacOptions options);

}  // namespace gridnode::drivers
