#pragma once

#include <memory>

#include "gridnode/agent/accelerator_control.hpp"
#include "gridnode/drivers/nvml.hpp"

namespace gridnode::agent {

// AcceleratorControl over the nvml driver's GPUs: power limits through drivers::NvmlPower
// (the driver's own library and handles, each call on a thread of its own with the driver's
// deadline). The processes are not listed here: the policy reads them from the nvml driver's
// samples (lists_processes() is false). Setting a limit needs root or CAP_SYS_ADMIN.
class NvmlAcceleratorControl final : public AcceleratorControl {
 public:
  explicit NvmlAcceleratorControl(std::shared_ptr<drivers::NvmlPower> power)
      : power_(std::move(power)) {}

  bool lists_processes() const override { return false; }
  platform::Result<std::vector<AcceleratorProcess>> list_processes() override;
  platform::Result<std::vector<std::string>> gpu_uuids() override;
  platform::Result<std::uint32_t> power_limit_mw(std::uint32_t gpu) override;
  platform::Result<void> set_power_limit_mw(std::uint32_t gpu, std::uint32_t milliwatts) override;

 private:
  std::shared_ptr<drivers::NvmlPower> power_;
};

}  // namespace gridnode::agent
