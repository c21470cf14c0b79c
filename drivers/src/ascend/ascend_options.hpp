#pragma once

#include "gridnode/drivers/ascend.hpp"
#include "gridnode/drivers/registry.hpp"

namespace gridnode::drivers::ascend {

// [ascend] of agent.toml:
//   library = "libdcmi.so"   what dlopen() is given (a bare soname: the loader's path)
//   call_timeout = 1         seconds one DCMI call may take before its chip is degraded; the
//                            driver keeps at most half the sweep's deadline
[[nodiscard]] platform::Result<AscendOptions> options(const DriverContext& context,
                                                      const OptionSection& section);

}  // namespace gridnode::drivers::ascend
