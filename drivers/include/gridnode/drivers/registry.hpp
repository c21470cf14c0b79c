#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/drivers/nvml.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// What every driver may be given. Each driver takes what it needs from here.
struct DriverOptions {
  platform::Roots roots;
  // nvml: what dlopen() loads, and how long one NVML call may take (NvmlOptions).
  std::string nvml_library = "libnvidia-ml.so.1";
  std::chrono::milliseconds nvml_call_timeout{1000};
  // nvml: where it publishes its GPUs for power-limit control (NvmlOptions::power); null: none.
  std::shared_ptr<NvmlPower> nvml_power = nullptr;
};

// The names of all drivers this build knows, in sweep order.
std::vector<std::string_view> driver_names();

// Builds the drivers called `names` (all known ones when empty). An unknown name is an error
// naming it (invalid_argument).
[[nodiscard]] platform::Result<std::vector<std::unique_ptr<Driver>>> make_drivers(
    const DriverOptions& options, const std::vector<std::string>& names = {});

}  // namespace gridnode::drivers
