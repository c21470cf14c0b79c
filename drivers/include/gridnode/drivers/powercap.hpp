#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// RAPL domains under <sysfs>/class/powercap: node_rapl_<domain>_joules_total{index,path}.
struct PowercapOptions {
  platform::Roots roots;
};
std::unique_ptr<Driver> make_powercap_driver(PowercapOptions options);

}  // namespace gridnode::drivers
