#include "nvml/nvml_power.hpp"

#include <unistd.h>

#include <cstdio>
#include <functional>

#include "gridnode/drivers/nvml.hpp"

namespace gridnode::drivers {
namespace nvml {

std::string format_watts(std::uint32_t mw) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%u.%03u", mw / 1000, mw % 1000);
  std::string s(buf);
  while (s.back() == '0') {
    s.pop_back();
  }
  if (s.back() == '.') {
    s.pop_back();
  }
  return s + " W";
}

namespace {

// What one call found, written on the worker and read after it is done.
struct PowerCall {
  nvmlReturn_t current_rc = NVML_ERROR_FUNCTION_NOT_FOUND;
  unsigned int current = 0;
  nvmlReturn_t constraints_rc = NVML_ERROR_FUNCTION_NOT_FOUND;
  unsigned int min = 0, max = 0;
  nvmlReturn_t default_rc = NVML_ERROR_FUNCTION_NOT_FOUND;
  unsigned int def = 0;
  bool set_checked = false;  // the setter ran (the value was within the constraints)
  nvmlReturn_t set_rc = NVML_SUCCESS;
};

// The GPU's name in messages: "GPU 0 (GPU-5a7c…)".
std::string gpu_name(std::uint32_t gpu, const std::string& uuid) {
  std::string s = "GPU " + std::to_string(gpu);
  return uuid.empty() ? s : s + " (" + uuid + ")";
}

// An NVML answer about power as an Error that says what to do about it.
platform::Error power_error(nvmlReturn_t rc, const std::string& gpu, const std::string& call) {
  std::string what = gpu + ": " + call;
  switch (rc) {
    case NVML_ERROR_NO_PERMISSION:
      return nvml_error(rc, what + " needs root or CAP_SYS_ADMIN (the agent runs as uid " +
                                std::to_string(::geteuid()) + ")");
    case NVML_ERROR_NOT_SUPPORTED:
      return nvml_error(rc, what + ": this GPU does not support power management limits");
    case NVML_ERROR_GPU_IS_LOST:
      return nvml_error(rc, what + ": the GPU fell off the bus");
    case NVML_ERROR_INVALID_ARGUMENT:
      return nvml_error(rc, what + ": the value was refused");
    default:
      return nvml_error(rc, what);
  }
}

}  // namespace
}  // namespace nvml

using nvml::PowerCall;
using nvml::PowerState;

NvmlPower::NvmlPower() : state_(std::make_shared<PowerState>()) {}

NvmlPower::~NvmlPower() = default;

namespace {

// Runs `job` for GPU `gpu` on the state's worker and waits for it until the deadline. The job
// gets the library and the GPU's handle, and must own what it writes (it may outlive the wait).
// Sets `name` ("GPU 0 (GPU-…)") for the caller's messages. The caller holds st.call_mu.
platform::Result<void> run_power_call(PowerState& st, std::uint32_t gpu, std::string& name,
                                      std::function<void(const nvml::Api&, nvml::nvmlDevice_t)> job,
                                      const char* what) {
  std::shared_ptr<const nvml::Library> lib;
  nvml::nvmlDevice_t handle = nullptr;
  std::chrono::milliseconds timeout;
  {
    std::lock_guard lock(st.mu);
    if (!st.lib) {
      return platform::fail(std::errc::resource_unavailable_try_again,
                            "GPU " + std::to_string(gpu) +
                                ": NVML is not started (the nvml driver has not found the GPUs)");
    }
    if (gpu >= st.gpus.size()) {
      return platform::fail(
          std::errc::no_such_device,
          "no GPU " + std::to_string(gpu) + " (NVML found " + std::to_string(st.gpus.size()) + ")");
    }
    name = nvml::gpu_name(gpu, st.gpus[gpu].uuid);
    if (st.gpus[gpu].handle == nullptr) {
      return platform::fail(std::errc::no_such_device, name + ": unusable since discovery");
    }
    lib = st.lib;
    handle = st.gpus[gpu].handle;
    timeout = st.call_timeout;
    if (!st.worker) {
      st.worker = std::make_unique<CallWorker>();
    }
    if (st.worker->busy()) {
      return platform::fail(std::errc::timed_out,
                            name + ": " + what + ": an earlier NVML call has not returned");
    }
    // The job owns the library it calls into: a hung call keeps its code mapped.
    st.worker->submit([lib, handle, job = std::move(job)] { job(lib->api(), handle); });
  }
  // The worker, once made, lives as long as the state: safe to wait on outside `mu`.
  if (!st.worker->wait_until(std::chrono::steady_clock::now() + timeout)) {
    return platform::fail(std::errc::timed_out, name + ": " + what + " did not return within " +
                                                    std::to_string(timeout.count()) + " ms");
  }
  return {};
}

void read_on_worker(const nvml::Api& a, nvml::nvmlDevice_t dev, PowerCall& c) {
  if (a.get_power_management_limit) {
    c.current_rc = a.get_power_management_limit(dev, &c.current);
  }
  if (a.get_power_constraints) {
    c.constraints_rc = a.get_power_constraints(dev, &c.min, &c.max);
  }
  if (a.get_power_default_limit) {
    c.default_rc = a.get_power_default_limit(dev, &c.def);
  }
}

}  // namespace

platform::Result<NvmlPower::Limits> NvmlPower::read_limits(std::uint32_t gpu) {
  std::lock_guard call(state_->call_mu);
  auto c = std::make_shared<PowerCall>();
  std::string name;
  auto ran = run_power_call(
      *state_, gpu, name,
      [c](const nvml::Api& a, nvml::nvmlDevice_t dev) { read_on_worker(a, dev, *c); },
      "nvmlDeviceGetPowerManagementLimit");
  if (!ran) {
    return tl::unexpected(ran.error());
  }
  if (c->current_rc == nvml::NVML_ERROR_FUNCTION_NOT_FOUND) {
    return platform::fail(std::errc::function_not_supported,
                          name + ": the NVML library has no nvmlDeviceGetPowerManagementLimit");
  }
  if (c->current_rc != nvml::NVML_SUCCESS) {
    return tl::unexpected(
        nvml::power_error(c->current_rc, name, "nvmlDeviceGetPowerManagementLimit"));
  }
  Limits l;
  l.current_mw = c->current;
  if (c->constraints_rc == nvml::NVML_SUCCESS) {
    l.min_mw = c->min;
    l.max_mw = c->max;
  }
  if (c->default_rc == nvml::NVML_SUCCESS) {
    l.default_mw = c->def;
  }
  return l;
}

platform::Result<std::vector<std::string>> NvmlPower::gpu_uuids() {
  std::lock_guard lock(state_->mu);
  if (!state_->lib) {
    return platform::fail(std::errc::resource_unavailable_try_again,
                          "NVML is not started (the nvml driver has not found the GPUs)");
  }
  std::vector<std::string> out;
  out.reserve(state_->gpus.size());
  for (const auto& g : state_->gpus) {
    out.push_back(g.uuid);
  }
  return out;
}

platform::Result<void> NvmlPower::set_limit_mw(std::uint32_t gpu, std::uint32_t milliwatts) {
  std::lock_guard call(state_->call_mu);
  auto c = std::make_shared<PowerCall>();
  std::string name;
  // The constraints are read in the same job, just before the setter: NVML would refuse an
  // out-of-range value with a bare INVALID_ARGUMENT, and the operator needs the range.
  auto ran = run_power_call(
      *state_, gpu, name,
      [c, milliwatts](const nvml::Api& a, nvml::nvmlDevice_t dev) {
        if (a.set_power_limit == nullptr) {
          return;
        }
        if (a.get_power_constraints) {
          c->constraints_rc = a.get_power_constraints(dev, &c->min, &c->max);
          if (c->constraints_rc == nvml::NVML_SUCCESS &&
              (milliwatts < c->min || milliwatts > c->max)) {
            return;
          }
          if (c->constraints_rc == nvml::NVML_ERROR_GPU_IS_LOST) {
            return;
          }
        }
        c->set_checked = true;
        c->set_rc = a.set_power_limit(dev, milliwatts);
      },
      "nvmlDeviceSetPowerManagementLimit");
  if (!ran) {
    return ran;
  }
  if (c->constraints_rc == nvml::NVML_ERROR_GPU_IS_LOST) {
    return tl::unexpected(
        nvml::power_error(c->constraints_rc, name, "nvmlDeviceGetPowerManagementLimitConstraints"));
  }
  if (!c->set_checked) {
    if (c->constraints_rc == nvml::NVML_SUCCESS) {
      return platform::fail(std::errc::invalid_argument,
                            name + ": " + nvml::format_watts(milliwatts) +
                                " is outside the range this GPU accepts, " +
                                nvml::format_watts(c->min) + " to " + nvml::format_watts(c->max));
    }
    return platform::fail(std::errc::function_not_supported,
                          name +
                              ": the NVML library has no nvmlDeviceSetPowerManagementLimit "
                              "(power limits cannot be set with this driver)");
  }
  if (c->set_rc != nvml::NVML_SUCCESS) {
    return tl::unexpected(nvml::power_error(
        c->set_rc, name,
        "nvmlDeviceSetPowerManagementLimit(" + nvml::format_watts(milliwatts) + ")"));
  }
  return {};
}

}  // namespace gridnode::drivers
