#pragma once

#include "gridnode/drivers/netclass.hpp"
#include "gridnode/drivers/registry.hpp"

namespace gridnode::drivers::netclass {

// [netclass] of agent.toml, node_exporter's two netclass flags:
//   ignored_devices = "^$"          a regex (ECMAScript) searched in each device name; a match
//                                   is not reported (--collector.netclass.ignored-devices)
//   ignore_invalid_speed = false    leave out a negative speed (the kernel's -1, "unknown")
//                                   (--collector.netclass.ignore-invalid-speed)
[[nodiscard]] platform::Result<NetclassOptions> options(const DriverContext& context,
                                                        const OptionSection& section);

}  // namespace gridnode::drivers::netclass
