#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "call_worker.hpp"
#include "nvml/nvml_library.hpp"

namespace gridnode::drivers::nvml {

// What NvmlPower shares with the nvml driver. The driver publishes its library and device
// handles after each discovery and withdraws them before nvmlShutdown; NvmlPower's calls copy
// them under `mu` and run on `worker`.
struct PowerState {
  struct Gpu {
    nvmlDevice_t handle = nullptr;  // null: unusable at discovery
    std::string uuid;
  };

  // Held for a whole call (one at a time), and by the driver before it shuts NVML down, so that
  // no call is inside the library when nvmlShutdown runs.
  std::mutex call_mu;
  std::mutex mu;                       // guards what follows
  std::shared_ptr<const Library> lib;  // null: not discovered yet, or shut down
  std::vector<Gpu> gpus;
  std::chrono::milliseconds call_timeout{1000};
  // Made on the first call: a host that never sets a limit has no thread for it.
  std::unique_ptr<CallWorker> worker;

  // Driver side: the GPUs found (index order), or none (lib null) before a shutdown.
  void publish(std::shared_ptr<const Library> library, std::vector<Gpu> found,
               std::chrono::milliseconds timeout) {
    std::lock_guard lock(mu);
    lib = std::move(library);
    gpus = std::move(found);
    call_timeout = timeout;
  }
  // Whether a call is still running past its deadline (the driver then skips nvmlShutdown).
  bool busy() {
    std::lock_guard lock(mu);
    return worker && worker->busy();
  }
};

// "250 W", "312.512 W": NVML's milliwatts, exact.
std::string format_watts(std::uint32_t mw);

}  // namespace gridnode::drivers::nvml
