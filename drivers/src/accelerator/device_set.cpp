#include "accelerator/device_set.hpp"

#include <algorithm>

#include "gridnode/platform/log.hpp"

namespace gridnode::drivers::accelerators {

platform::Result<void> ControlWorker::call(std::function<void()> job, std::string_view what,
                                           std::chrono::milliseconds timeout) {
  if (worker_.busy()) {
    return platform::fail(std::errc::timed_out, std::string(what) + ": an earlier " + library_ +
                                                    " call has not returned");
  }
  worker_.submit(std::move(job));
  if (!worker_.wait_until(std::chrono::steady_clock::now() + timeout)) {
    return platform::fail(std::errc::timed_out, std::string(what) + " did not return within " +
                                                    std::to_string(timeout.count()) + " ms");
  }
  return {};
}

Settled settle(DeviceSlot& d, bool read_lost) {
  Settled s;
  if (d.lost) {
    return s;  // stays down; nothing more to ask
  }
  if (!d.fresh) {
    if (!d.degraded) {
      d.degraded = true;
      s.change = HealthChange::degraded;
    }
  } else if (read_lost) {
    d.lost = true;
    s.change = HealthChange::lost;
  } else {
    s.answering = true;
    if (d.degraded) {
      d.degraded = false;
      s.change = HealthChange::recovered;
    }
  }
  return s;
}

namespace {

void with_state(Labels& fields, const char* state) {
  fields.emplace_back("state", state);
  std::sort(fields.begin(), fields.end());
}

}  // namespace

DeviceEvent lost_event(std::string_view component, const std::string& who, std::string_view why,
                       Labels fields) {
  DeviceEvent ev;
  ev.severity = 3;
  ev.message = who + " fell off the bus (" + std::string(why) + ")";
  with_state(fields, "lost");
  ev.fields = std::move(fields);
  platform::log(platform::Level::warning, component, platform::LogLine(ev.message));
  return ev;
}

DeviceEvent health_event(std::string_view component, const std::string& who, bool degraded,
                         std::string_view a_call, std::chrono::milliseconds timeout,
                         Labels fields) {
  DeviceEvent ev;
  ev.severity = degraded ? 4 : 6;
  ev.message = who + " " +
               (degraded ? "not answering: " + std::string(a_call) + " did not return within " +
                               std::to_string(timeout.count()) + " ms"
                         : std::string("answering again"));
  with_state(fields, degraded ? "degraded" : "up");
  ev.fields = std::move(fields);
  platform::log(degraded ? platform::Level::warning : platform::Level::notice, component,
                platform::LogLine(ev.message));
  return ev;
}

}  // namespace gridnode::drivers::accelerators
