#include "gridnode/agent/policy_events.hpp"

#include <algorithm>
#include <ctime>

#include "gridnode/platform/log.hpp"

namespace gridnode::agent {
namespace {

platform::Level journal_level(Severity s) {
  // The journal has no alert or crit in our Level; both are at least errors.
  return s <= Severity::err ? platform::Level::err : static_cast<platform::Level>(s);
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

protocol::Event to_report_event(const PolicyEvent& e) {
  protocol::Event out;
  out.kind = protocol::EventKind::policy;
  out.severity = static_cast<std::uint8_t>(e.severity);
  out.source = e.rule;
  out.message = e.details;
  out.fields = {{"action", e.action}, {"result", e.result}, {"subject", e.subject},
                {"type", e.type}};
  if (e.suppressed > 0) {
    out.fields.emplace_back("suppressed", std::to_string(e.suppressed));
  }
  std::sort(out.fields.begin(), out.fields.end());
  return out;
}

void EventLog::keep(PolicyEvent e) {
  e.id = next_id_++;
  if (e.time == std::chrono::system_clock::time_point{}) {
    e.time = std::chrono::system_clock::now();
  }
  platform::LogLine line(e.details);
  line.kv("rule", e.rule).kv("subject", e.subject).kv("action", e.action).kv("result", e.result);
  if (e.suppressed > 0) {
    line.kv("suppressed", static_cast<std::int64_t>(e.suppressed));
  }
  platform::log(journal_level(e.severity), "policy", line);
  if (pending_.size() < protocol::kMaxEvents / 2) {  // the rest of the report's events fit
    pending_.push_back(to_report_event(e));
  } else {
    ++rules_[e.rule].untold;  // told by the next summary
  }
  recent_.push_back(std::move(e));
  while (recent_.size() > capacity_) {
    recent_.pop_front();
  }
}

bool EventLog::record(PolicyEvent e, std::chrono::steady_clock::time_point now) {
  RuleState& r = rules_[e.rule];
  r.type = e.type;
  r.severity = e.severity;
  if (now - r.window_start >= limits_.window) {
    r.window_start = now;
    r.in_window = 0;
  }
  if (r.in_window >= limits_.burst) {
    ++r.untold;
    ++r.suppressed;
    ++suppressed_total_;
    return false;
  }
  ++r.in_window;
  ++r.events;
  e.suppressed = r.untold;
  r.untold = 0;
  keep(std::move(e));
  return true;
}

std::vector<protocol::Event> EventLog::take_report_events(
    std::chrono::steady_clock::time_point now) {
  for (auto& [rule, r] : rules_) {
    if (r.untold > 0 && now - r.window_start >= limits_.window) {
      PolicyEvent s;
      s.rule = rule;
      s.type = r.type;
      s.severity = r.severity;
      s.subject = rule;
      s.details = "more events of this rule were rate-limited";
      s.action = "report";
      s.result = "summarised";
      s.suppressed = r.untold;
      r.untold = 0;
      r.window_start = now;
      r.in_window = 1;
      keep(std::move(s));
    }
  }
  std::vector<protocol::Event> out;
  out.swap(pending_);
  return out;
}

nlohmann::json EventLog::to_json(std::optional<std::chrono::system_clock::time_point> since) const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : recent_) {
    if (since && e.time < *since) {
      continue;
    }
    nlohmann::json j = {
        {"id", e.id},
        {"time", iso_time(e.time)},
        {"unix_time", std::chrono::duration<double>(e.time.time_since_epoch()).count()},
        {"rule", e.rule},
        {"type", e.type},
        {"severity", to_string(e.severity)},
        {"subject", e.subject},
        {"details", e.details},
        {"action", e.action},
        {"result", e.result}};
    if (e.suppressed > 0) {
      j["suppressed"] = e.suppressed;
    }
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json EventLog::counts_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [rule, r] : rules_) {
    out[rule] = {{"events", r.events}, {"suppressed", r.suppressed}};
  }
  return out;
}

}  // namespace gridnode::agent
