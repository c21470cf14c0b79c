#include "gridnode/drivers/registry.hpp"

#include <algorithm>
#include <array>

#include "gridnode/drivers/amdgpu.hpp"
#include "gridnode/drivers/cpufreq.hpp"
#include "gridnode/drivers/hwmon.hpp"
#include "gridnode/drivers/netclass.hpp"
#include "gridnode/drivers/nvml.hpp"
#include "gridnode/drivers/powercap.hpp"
#include "gridnode/drivers/pressure.hpp"
#include "gridnode/drivers/procfs.hpp"
#include "gridnode/drivers/thermal.hpp"
#include "gridnode/drivers/timex.hpp"

namespace gridnode::drivers {
namespace {

struct Entry {
  std::string_view name;
  std::unique_ptr<Driver> (*make)(const DriverOptions&);
};

// An explicit table, not self-registration from static constructors: static libraries drop
// those, and their order is unspecified. A new driver is one line here.
constexpr std::array kDrivers{
    Entry{"procfs", [](const DriverOptions& o) { return make_procfs_driver({o.roots}); }},
    Entry{"hwmon", [](const DriverOptions& o) { return make_hwmon_driver({o.roots}); }},
    Entry{"thermal", [](const DriverOptions& o) { return make_thermal_driver({o.roots}); }},
    Entry{"powercap", [](const DriverOptions& o) { return make_powercap_driver({o.roots}); }},
    Entry{"nvml",
          [](const DriverOptions& o) {
            return make_nvml_driver(
                {o.roots, o.nvml_library, o.nvml_call_timeout, {}, o.nvml_power});
          }},
    Entry{"amdgpu", [](const DriverOptions& o) { return make_amdgpu_driver({o.roots, {}}); }},
    Entry{"netclass", [](const DriverOptions& o) { return make_netclass_driver({o.roots}); }},
    Entry{"pressure", [](const DriverOptions& o) { return make_pressure_driver({o.roots}); }},
    Entry{"cpufreq", [](const DriverOptions& o) { return make_cpufreq_driver({o.roots}); }},
    Entry{"timex", [](const DriverOptions& /*o*/) { return make_timex_driver(); }},
};

}  // namespace

std::vector<std::string_view> driver_names() {
  std::vector<std::string_view> names;
  for (const auto& e : kDrivers) {
    names.push_back(e.name);
  }
  return names;
}

platform::Result<std::vector<std::unique_ptr<Driver>>> make_drivers(
    const DriverOptions& options, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    if (std::none_of(kDrivers.begin(), kDrivers.end(), [&](const Entry& e) { return e.name == n; })) {
      return platform::fail(std::errc::invalid_argument, "unknown driver \"" + n + "\"");
    }
  }
  std::vector<std::unique_ptr<Driver>> drivers;
  for (const auto& e : kDrivers) {
    if (names.empty() || std::find(names.begin(), names.end(), e.name) != names.end()) {
      drivers.push_back(e.make(options));
    }
  }
  return drivers;
}

}  // namespace gridnode::drivers
