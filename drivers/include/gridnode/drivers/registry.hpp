#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/drivers/nvml.hpp"
#include "gridnode/drivers/options.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// What every driver is built with, besides its own options section.
struct DriverContext {
  platform::Roots roots;
  // The agent's state directory: where a driver keeps what must survive a restart (a position).
  std::string state_dir = "/var/lib/gridnode";
  // How long the sampler lets one sweep run before it calls the driver stalled. A driver whose
  // calls have deadlines of their own keeps them well inside it.
  std::chrono::nanoseconds sweep_timeout = std::chrono::seconds(5);
  // nvml: where it publishes its GPUs for power-limit control (NvmlOptions::power); null: none.
  std::shared_ptr<NvmlPower> nvml_power = nullptr;
};

// A command-line flag that sets one key of a driver's section (`--nvml-library` sets
// nvml.library), declared by the driver's registry entry so that the agent registers it
// without knowing the driver.
struct DriverFlag {
  std::string_view flag;    // "--nvml-library"
  std::string_view driver;  // "nvml": the section it sets
  std::string_view key;     // "library"
  std::string_view help;
};

// The names of all drivers this build knows, in sweep order.
std::vector<std::string_view> driver_names();

// Whether some driver reads a section called `name` of agent.toml.
bool has_section(std::string_view name);

// Checks a driver's section as the agent read it (at start and on every reload), without
// building the driver: unknown keys, wrong types and bad values are errors naming the key and
// where it was ("agent.toml:12: nvml.call_timeout: must be ..."). A section no driver reads is
// an error too.
[[nodiscard]] platform::Result<void> check_section(const OptionSection& section);

// The flags the drivers declare.
std::vector<DriverFlag> driver_flags();

// Builds the drivers called `names` (all known ones when empty), each from the context and its
// section of `sections` (none: its defaults). An unknown name is an error naming it
// (invalid_argument), as is a section a driver refuses.
[[nodiscard]] platform::Result<std::vector<std::unique_ptr<Driver>>> make_drivers(
    const DriverContext& context, const std::vector<std::string>& names = {},
    const std::vector<OptionSection>& sections = {});

// node_exporter's collector selection: `enabled` (--collector.NAME) and `disabled`
// (--no-collector.NAME) applied to `configured` (agent.toml's drivers; empty: all). The result
// is the list make_drivers takes (empty: all). Unknown names are errors naming them.
[[nodiscard]] platform::Result<std::vector<std::string>> select_drivers(
    const std::vector<std::string>& configured, const std::vector<std::string>& enabled,
    const std::vector<std::string>& disabled);

}  // namespace gridnode::drivers
