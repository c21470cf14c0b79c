#pragma once

#include "gridnode/drivers/cndev.hpp"
#include "gridnode/drivers/registry.hpp"

namespace gridnode::drivers::cndev {

// [cndev] of agent.toml: library = "libcndev.so", call_timeout = 1 (as [ascend]'s).
[[nodiscard]] platform::Result<CndevOptions> options(const DriverContext& context,
                                                     const OptionSection& section);

}  // namespace gridnode::drivers::cndev
