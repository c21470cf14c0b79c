#pragma once

#include <chrono>
#include <string>

#include "gridnode/drivers/registry.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::accelerators {

// The section every dlopen'd accelerator driver reads ([nvml], [ascend], [cndev]), and only it:
//   library = "…"       what dlopen() is given; `library` keeps its default when absent
//   call_timeout = 1    seconds one library call may take (0.01 to 60) before its device is
//                       degraded; `call_timeout` keeps its default when absent
// A sweep may wait out two deadlines (the control call, then the devices' calls in parallel):
// the timeout kept is at most half the sweep's, so that the sampler never calls the driver
// stalled before it could say which device hung.
[[nodiscard]] platform::Result<void> read_library_options(const DriverContext& context,
                                                          const OptionSection& section,
                                                          std::string& library,
                                                          std::chrono::milliseconds& call_timeout);

}  // namespace gridnode::drivers::accelerators
