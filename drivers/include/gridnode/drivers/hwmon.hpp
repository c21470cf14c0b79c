#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter's hwmon collector: every chip under <sysfs>/class/hwmon (and the sensors its
// `device/` directory holds), named as node_exporter 1.5.0 names them: node_hwmon_chip_names,
// node_hwmon_sensor_label and node_hwmon_<type>[_<property>]_<unit>{chip,sensor}.
struct HwmonOptions {
  platform::Roots roots;
  // Keep one descriptor open per reading and pread it every sweep (one system call per
  // reading). false opens, reads and closes each file every sweep, for hosts where the
  // agent may not hold that many descriptors; it is also the baseline of BM_HwmonSweep.
  bool keep_files_open = true;
};

// Never fails: a host without hwmon gets a driver whose sweep() reports
// no_such_file_or_directory. The driver walks the tree on its first sweep, again about every
// 60 sweeps and after a chip vanished, and otherwise only re-reads the files it found.
std::unique_ptr<Driver> make_hwmon_driver(HwmonOptions options);

}  // namespace gridnode::drivers
