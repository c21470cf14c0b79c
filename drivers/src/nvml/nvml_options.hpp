#pragma once

#include "gridnode/drivers/nvml.hpp"
#include "gridnode/drivers/registry.hpp"

namespace gridnode::drivers::nvml {

// [nvml] of agent.toml:
//   library = "libnvidia-ml.so.1"   what dlopen() is given (a bare soname: the loader's path)
//   call_timeout = 1                seconds one NVML call may take before its GPU is degraded;
//                                   the driver keeps at most half the sweep's deadline
[[nodiscard]] platform::Result<NvmlOptions> options(const DriverContext& context,
                                                    const OptionSection& section);

}  // namespace gridnode::drivers::nvml
