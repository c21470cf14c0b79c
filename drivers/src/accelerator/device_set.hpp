#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "../call_worker.hpp"  // relative: tests include this header by path
#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/result.hpp"

// What every dlopen'd accelerator driver (nvml, ascend, …) does the same way around its
// vendor's calls: a control worker for the calls that are not about one device, one worker per
// device so that a wedged device costs a sweep one deadline and the others nothing, the health
// each device keeps across sweeps (answering, degraded while a call is past its deadline, lost
// once the library says it fell off the bus), and the events those changes make.
namespace gridnode::drivers::accelerators {

// Runs the calls that are not about one device (init, discovery, the steady sweep's poll) on a
// worker of its own, with a deadline.
class ControlWorker {
 public:
  // `library`: what the messages call the library ("NVML", "DCMI").
  explicit ControlWorker(std::string library) : library_(std::move(library)) {}

  // Runs `job` on the worker and waits for it; timed_out when it does not come back within
  // `timeout` (`what` names the call), or when an earlier job still has not.
  [[nodiscard]] platform::Result<void> call(std::function<void()> job, std::string_view what,
                                            std::chrono::milliseconds timeout);
  CallWorker& worker() { return worker_; }

 private:
  std::string library_;
  CallWorker worker_;
};

// One device's health across sweeps, and the worker its calls run on.
struct DeviceSlot {
  bool lost = false;      // fell off the bus: not asked again until rediscovery
  bool degraded = false;  // a call to it is past its deadline
  bool fresh = false;     // this sweep's read finished in time
  std::unique_ptr<CallWorker> worker = std::make_unique<CallWorker>();
};

// Whether the device may be asked this sweep: not lost, and its worker not still in last
// sweep's call (then it is degraded, not asked again).
inline bool can_ask(const DeviceSlot& d) { return !d.lost && !d.worker->busy(); }

// Starts every askable device's read at once (`submit(device)` hands its job to
// slot_of(device).worker and returns), then waits for them all until one deadline; marks
// `fresh` those that finished in time.
template <class Devices, class SlotOf, class Submit>
void read_all(Devices& devices, SlotOf slot_of, Submit submit, std::chrono::milliseconds timeout) {
  for (auto& dev : devices) {
    DeviceSlot& d = slot_of(dev);
    d.fresh = false;
    if (!can_ask(d)) {
      continue;
    }
    submit(dev);
    d.fresh = true;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto& dev : devices) {
    DeviceSlot& d = slot_of(dev);
    if (d.fresh && !d.worker->wait_until(deadline)) {
      d.fresh = false;
    }
  }
}

enum class HealthChange : std::uint8_t { none, lost, degraded, recovered };

// After read_all(): whether the device answered this sweep (its values may be published), and
// how its health changed. `read_lost`: its read said the device fell off the bus.
struct Settled {
  bool answering = false;
  HealthChange change = HealthChange::none;
};
Settled settle(DeviceSlot& d, bool read_lost);

// The events of a health change, logged at warning (notice for a recovery) under `component`.
// `who` names the device for people ("GPU 0 (GPU-…)", "NPU 3 (Ascend910B3)"); `fields` are its
// identifying labels ("state" is added). lost: severity 3, `why` says how the library told
// ("NVML_ERROR_GPU_IS_LOST"). degraded: severity 4, "not answering: `a_call` did not return
// within N ms" (`a_call`: "an NVML call"). recovered: severity 6, "answering again".
DeviceEvent lost_event(std::string_view component, const std::string& who, std::string_view why,
                       Labels fields);
DeviceEvent health_event(std::string_view component, const std::string& who, bool degraded,
                         std::string_view a_call, std::chrono::milliseconds timeout, Labels fields);

// Pushes the event of a health change onto `out`, if any: `lost()` makes the lost one;
// degraded and recovered are health_event()'s, `who()` and `fields()` asked only then.
template <class Lost, class Who, class Fields>
void push_health_change(Sweep& out, HealthChange change, Lost lost, std::string_view component,
                        Who who, std::string_view a_call, std::chrono::milliseconds timeout,
                        Fields fields) {
  switch (change) {
    case HealthChange::lost:
      out.events.push_back(lost());
      break;
    case HealthChange::degraded:
    case HealthChange::recovered:
      out.events.push_back(health_event(component, who(), change == HealthChange::degraded, a_call,
                                        timeout, fields()));
      break;
    case HealthChange::none:
      break;
  }
}

}  // namespace gridnode::drivers::accelerators
