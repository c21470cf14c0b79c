#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// Host state from <procfs>: CPU seconds per mode, memory, load, network interfaces, disks,
// boot time, uptime and boot id, under node_exporter's names.
struct ProcfsOptions {
  platform::Roots roots;
};
std::unique_ptr<Driver> make_procfs_driver(ProcfsOptions options);

}  // namespace gridnode::drivers
