#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter's hwmon collector: every chip under <sysfs>/class/hwmon, node_hwmon_* names.
struct HwmonOptions {
  platform::Roots roots;
};
std::unique_ptr<Driver> make_hwmon_driver(HwmonOptions options);

}  // namespace gridnode::drivers
