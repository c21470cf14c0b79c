#include "gridnode/agent/nvml_accelerator_control.hpp"

namespace gridnode::agent {

platform::Result<std::vector<AcceleratorProcess>> NvmlAcceleratorControl::list_processes() {
  return platform::fail(std::errc::function_not_supported,
                        "the nvml driver's processes are in its samples");
}

platform::Result<std::vector<std::string>> NvmlAcceleratorControl::gpu_uuids() {
  return power_->gpu_uuids();
}

platform::Result<std::uint32_t> NvmlAcceleratorControl::power_limit_mw(std::uint32_t gpu) {
  auto limits = power_->read_limits(gpu);
  if (!limits) {
    return tl::unexpected(limits.error());
  }
  return limits->current_mw;
}

platform::Result<void> NvmlAcceleratorControl::set_power_limit_mw(std::uint32_t gpu,
                                                                  std::uint32_t milliwatts) {
  return power_->set_limit_mw(gpu, milliwatts);
}

}  // namespace gridnode::agent
