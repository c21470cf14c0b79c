#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gridnode/agent/policy.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::agent {

// One violation, or one action taken about it.
struct PolicyEvent {
  std::uint64_t id = 0;  // set by EventLog
  std::chrono::system_clock::time_point time{};
  std::string rule;  // the rule's name: "network", "integrity", "gpu-hot"
  std::string type;  // the rule's type: access, limit, intrusion, integrity, network,
                     // accelerator, policy
  Severity severity = Severity::warning;
  std::string subject;  // what it is about: a file, "tcp:8080", "pid 4242", a series
  std::string details;  // what happened, in words
  std::string action = "report";
  std::string result = "reported";  // the action's outcome ("terminated with SIGTERM", "failed: …")
  std::uint64_t suppressed = 0;  // events of this rule rate-limited away since its previous one
};

// As a report event (kind policy, source = rule): what upstream sees.
protocol::Event to_report_event(const PolicyEvent& e);

// Where policy events go: a journal line each, the next signed report, and a ring of recent
// ones for `gridnodectl events`. Rate-limited per rule (EventLimits): an event over its rule's
// budget is dropped but counted, and the count rides on the rule's next event, or on a summary
// event once the window has passed. Loop thread only; the clock is passed in (tests).
class EventLog {
 public:
  explicit EventLog(std::size_t capacity = 512) : capacity_(capacity) {}

  void set_limits(EventLimits limits) { limits_ = limits; }

  // Returns whether `e` was kept (false: rate-limited, counted).
  bool record(PolicyEvent e, std::chrono::steady_clock::time_point now);

  // The report events since the last call (drained); adds a summary for every rule whose
  // suppressed events have not been told and whose window is over.
  std::vector<protocol::Event> take_report_events(std::chrono::steady_clock::time_point now);

  // Recent events, newest last; `since` filters by wall time.
  nlohmann::json to_json(std::optional<std::chrono::system_clock::time_point> since) const;
  // Per rule: events, suppressed.
  nlohmann::json counts_json() const;

  const std::deque<PolicyEvent>& recent() const { return recent_; }
  std::uint64_t total() const { return next_id_ - 1; }
  std::uint64_t suppressed_total() const { return suppressed_total_; }

 private:
  struct RuleState {
    std::chrono::steady_clock::time_point window_start{};
    std::uint32_t in_window = 0;
    std::uint64_t untold = 0;  // suppressed, not yet carried by an event
    std::uint64_t events = 0;
    std::uint64_t suppressed = 0;
    std::string type;
    Severity severity = Severity::warning;
  };
  void keep(PolicyEvent e);

  std::size_t capacity_;
  EventLimits limits_;
  std::map<std::string, RuleState> rules_;
  std::deque<PolicyEvent> recent_;
  std::vector<protocol::Event> pending_;
  std::uint64_t next_id_ = 1;
  std::uint64_t suppressed_total_ = 0;
};

}  // namespace gridnode::agent
