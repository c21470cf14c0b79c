#include "gridnode/agent/device_events.hpp"

#include <ctime>

namespace gridnode::agent {
namespace {

std::string iso_time(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// syslog's words for DeviceEvent::severity, as the policy events spell theirs.
const char* severity_text(std::uint8_t s) {
  switch (s) {
    case 0:
      return "emerg";
    case 1:
      return "alert";
    case 2:
      return "crit";
    case 3:
      return "err";
    case 4:
      return "warning";
    case 5:
      return "notice";
    case 6:
      return "info";
    default:
      return "debug";
  }
}

}  // namespace

void DeviceEventLog::on_round(const std::vector<DriverSlot>& slots,
                              std::chrono::system_clock::time_point now) {
  for (const DriverSlot& s : slots) {
    for (const auto& e : s.new_events) {  // this round's, each once (see DriverSlot)
      recent_.push_back({now, std::string(s.driver->name()), e});
      if (recent_.size() > capacity_) {
        recent_.pop_front();
      }
    }
  }
}

nlohmann::json DeviceEventLog::to_json(
    std::optional<std::chrono::system_clock::time_point> since) const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : recent_) {
    if (since && e.time < *since) {
      continue;
    }
    nlohmann::json fields = nlohmann::json::object();
    for (const auto& [k, v] : e.event.fields) {
      fields[k] = v;
    }
    out.push_back({{"time", iso_time(e.time)},
                   {"unix_time", std::chrono::duration<double>(e.time.time_since_epoch()).count()},
                   {"kind", "device"},
                   {"source", e.source},
                   {"severity", severity_text(e.event.severity)},
                   {"message", e.event.message},
                   {"fields", std::move(fields)}});
  }
  return out;
}

}  // namespace gridnode::agent
