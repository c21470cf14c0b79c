#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "gridnode/agent/accelerator_control.hpp"

namespace gridnode::testing {

// An AcceleratorControl whose process list and power limits a test sets; records every
// set_power_limit_mw. Thread-safe: the policy engine calls it from its worker thread.
class FakeAcceleratorControl final : public agent::AcceleratorControl {
 public:
  void set_processes(std::vector<agent::AcceleratorProcess> procs) {
    std::lock_guard lock(mu_);
    procs_ = std::move(procs);
  }
  void set_limit(std::uint32_t gpu, std::uint32_t mw) {
    std::lock_guard lock(mu_);
    limits_[gpu] = mw;
  }
  std::uint32_t limit(std::uint32_t gpu) {
    std::lock_guard lock(mu_);
    return limits_[gpu];
  }
  std::size_t set_calls() {
    std::lock_guard lock(mu_);
    return set_calls_;
  }
  // Every power call fails with `error` until it is reset (nullopt).
  void fail_with(std::optional<platform::Error> error) {
    std::lock_guard lock(mu_);
    error_ = std::move(error);
  }

  platform::Result<std::vector<agent::AcceleratorProcess>> list_processes() override {
    std::lock_guard lock(mu_);
    return procs_;
  }
  platform::Result<std::uint32_t> power_limit_mw(std::uint32_t gpu) override {
    std::lock_guard lock(mu_);
    if (error_) {
      return tl::unexpected(*error_);
    }
    auto it = limits_.find(gpu);
    if (it == limits_.end()) {
      return platform::fail(std::errc::no_such_device, "no GPU " + std::to_string(gpu));
    }
    return it->second;
  }
  platform::Result<void> set_power_limit_mw(std::uint32_t gpu, std::uint32_t mw) override {
    std::lock_guard lock(mu_);
    if (error_) {
      return tl::unexpected(*error_);
    }
    if (!limits_.contains(gpu)) {
      return platform::fail(std::errc::no_such_device, "no GPU " + std::to_string(gpu));
    }
    ++set_calls_;
    limits_[gpu] = mw;
    return {};
  }

 private:
  std::mutex mu_;
  std::vector<agent::AcceleratorProcess> procs_;
  std::map<std::uint32_t, std::uint32_t> limits_;
  std::size_t set_calls_ = 0;
  std::optional<platform::Error> error_;
};

}  // namespace gridnode::testing
