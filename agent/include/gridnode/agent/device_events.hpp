#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gridnode/agent/sampler.hpp"
#include "gridnode/drivers/driver.hpp"

namespace gridnode::agent {

// The drivers' device events (an XID of a GPU, an entry of a BMC's SEL), as the reports carry
// them, kept for `gridnodectl events`: the most recent ones, newest last. Loop thread only.
class DeviceEventLog {
 public:
  explicit DeviceEventLog(std::size_t capacity = 512) : capacity_(capacity) {}

  // After a round: the events of every sweep that came back since the previous round
  // (DriverSlot::new_events), each taken once.
  void on_round(const std::vector<DriverSlot>& slots, std::chrono::system_clock::time_point now);

  // {time, unix_time, kind: "device", source, severity, message, fields{}}; `since` filters by
  // the time the agent received them.
  nlohmann::json to_json(std::optional<std::chrono::system_clock::time_point> since) const;

 private:
  struct Entry {
    std::chrono::system_clock::time_point time;
    std::string source;
    drivers::DeviceEvent event;
  };
  std::size_t capacity_;
  std::deque<Entry> recent_;
};

}  // namespace gridnode::agent
