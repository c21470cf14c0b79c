#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter's thermal_zone collector, read under <sysfs>/class/thermal:
//   node_thermal_zone_temp{type,zone}           millidegrees, scale {1,-3} -> °C
//   node_cooling_device_cur_state{name,type}    as written (intel_powerclamp's -1 included)
//   node_cooling_device_max_state{name,type}
// `zone` / `name` are the N of thermal_zoneN / cooling_deviceN, `type` the trimmed type file.
// Unlike node_exporter 1.5.0, which drops the whole collector on the first unparsable file, a
// bad reading is skipped and counted in Sweep::errors; the rest are still reported.
struct ThermalOptions {
  platform::Roots roots;
  // Keep each reading's file open between sweeps (one pread per reading). false reopens every
  // file on every sweep: for hosts where we may not hold that many descriptors, and for tests,
  // where a removed regular file stays readable through an open descriptor (sysfs answers
  // ENODEV instead).
  bool keep_files_open = true;
};

// Never fails; the first sweep() says whether <sysfs>/class/thermal exists
// (no_such_file_or_directory when it does not).
std::unique_ptr<Driver> make_thermal_driver(ThermalOptions options);

}  // namespace gridnode::drivers
