#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter's rapl collector: every zone under <sysfs>/class/powercap that has a `name`
// (intel-rapl:*, intel-rapl-mmio:*, subzones included) becomes
//   node_rapl_<name>_joules_total{index,path}   energy_uj in µJ, scale {1,-6} -> J, counter
// where "package-0" gives name "package", index "0"; a name without a "-N" suffix ("core",
// "dram", "psys") takes as index the number of zones of that name seen before it; `path` is
// <sysfs>/class/powercap/<zone>. energy_uj wraps at max_energy_range_uj; the driver keeps
// per-zone state so that the counter it reports keeps increasing across wraps (the first sweep
// reports the raw value, as node_exporter does; so does a zone that vanished and came back). A zone
// whose energy_uj is unreadable (root-only since Linux 5.10, CVE-2020-8694) is skipped and counted;
// the others are still reported.
struct PowercapOptions {
  platform::Roots roots;
  // As ThermalOptions::keep_files_open: false reopens every file on every sweep.
  bool keep_files_open = true;
};

// Never fails; the first sweep() says whether <sysfs>/class/powercap exists
// (no_such_file_or_directory when it does not).
std::unique_ptr<Driver> make_powercap_driver(PowercapOptions options);

}  // namespace gridnode::drivers
