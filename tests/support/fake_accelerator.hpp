#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
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
  // GPU `gpu`'s UUID (gpu_uuids() lists them by index; a gap is "").
  void set_uuid(std::uint32_t gpu, std::string uuid) {
    std::lock_guard lock(mu_);
    uuids_[gpu] = std::move(uuid);
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
  // Fails only with a resource_unavailable_try_again error (the GPUs not found yet): like
  // NvmlPower's, the list costs no call that could be refused.
  platform::Result<std::vector<std::string>> gpu_uuids() override {
    std::lock_guard lock(mu_);
    if (error_ && error_->code == std::errc::resource_unavailable_try_again) {
      return tl::unexpected(*error_);
    }
    std::vector<std::string> out(uuids_.empty() ? 0 : uuids_.rbegin()->first + 1);
    for (const auto& [gpu, uuid] : uuids_) {
      out[gpu] = uuid;
    }
    return out;
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
  // Runs at the start of every set_power_limit_mw, outside the fake's lock: what the engine
  // had done before it changed a limit (set before the engine runs).
  void on_set(std::function<void(std::uint32_t gpu, std::uint32_t mw)> hook) {
    on_set_ = std::move(hook);
  }

  platform::Result<void> set_power_limit_mw(std::uint32_t gpu, std::uint32_t mw) override {
    if (on_set_) {
      on_set_(gpu, mw);
    }
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
  std::map<std::uint32_t, std::string> uuids_;
  std::size_t set_calls_ = 0;
  std::optional<platform::Error> error_;
  std::function<void(std::uint32_t, std::uint32_t)> on_set_;
};

}  // namespace gridnode::testing
