#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_thermal_zone_temp{zone,type}, node_cooling_device_cur_state / max_state{name,type},
// read under <sysfs>/class/thermal.
struct ThermalOptions {
  platform::Roots roots;
};
std::unique_ptr<Driver> make_thermal_driver(ThermalOptions options);

}  // namespace gridnode::drivers
