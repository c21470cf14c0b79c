#include "report_json.hpp"

#include <array>
#include <charconv>
#include <cstdlib>
#include <ctime>

namespace gridnode::collector {
namespace {

nlohmann::json labels_json(const platform::Labels& labels) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : labels) {
    j[k] = v;
  }
  return j;
}

nlohmann::json value_json(platform::Value value, platform::Scale scale) {
  std::array<char, 64> buf{};
  std::size_t n = platform::format_value(value, scale, std::span<char, 64>(buf));
  std::string_view text(buf.data(), n);
  if (text.find('.') == std::string_view::npos) {
    if (text.front() == '-') {
      std::int64_t i = 0;
      if (std::from_chars(text.data(), text.data() + text.size(), i).ec == std::errc()) {
        return i;
      }
    } else {
      std::uint64_t u = 0;
      if (std::from_chars(text.data(), text.data() + text.size(), u).ec == std::errc()) {
        return u;
      }
    }
  }
  // strtod rounds the exact decimal correctly; nlohmann prints the shortest text that reads back
  // as the same double.
  return std::strtod(std::string(text).c_str(), nullptr);
}

}  // namespace

std::string rfc3339_ns(std::uint64_t unix_ns) {
  std::time_t secs = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  std::array<char, 64> buf{};
  std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  std::array<char, 16> frac{};
  std::snprintf(frac.data(), frac.size(), ".%09lluZ",
                static_cast<unsigned long long>(unix_ns % 1'000'000'000));
  return std::string(buf.data(), n) + frac.data();
}

std::string uuid_text(const protocol::BootId& id) {
  std::string hex = crypto::to_hex(id);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

nlohmann::json header_json(const protocol::Report& report) {
  const auto& h = report.header;
  nlohmann::json events = nlohmann::json::array();
  for (const auto& e : report.events) {
    events.push_back({{"kind", std::string(protocol::to_string(e.kind))},
                      {"severity", e.severity},
                      {"source", e.source},
                      {"message", e.message},
                      {"fields", labels_json(e.fields)}});
  }
  return {{"type", "report"},
          {"node", h.node_id},
          {"labels", labels_json(h.node_labels)},
          {"seq", h.seq},
          {"boot_id", uuid_text(h.boot_id)},
          {"time", rfc3339_ns(h.time_ns)},
          {"keyframe", h.keyframe},
          {"prev", crypto::to_hex(h.prev)},
          {"digest", crypto::to_hex(report.digest)},
          {"catalog", crypto::to_hex(h.catalog)},
          {"events", std::move(events)}};
}

nlohmann::json report_json(const protocol::Report& report, const platform::Catalog& catalog) {
  nlohmann::json j = header_json(report);
  nlohmann::json metrics = nlohmann::json::array();
  for (std::size_t i = 0; i < report.values.size() && i < catalog.series.size(); ++i) {
    const auto& slot = report.values[i];
    if (!slot.present) {
      continue;
    }
    const auto& series = catalog.series[i];
    const auto& family = catalog.families[series.family];
    metrics.push_back({{"name", family.name},
                       {"labels", labels_json(series.labels)},
                       {"value", value_json(slot.value, family.scale)}});
  }
  j["metrics"] = std::move(metrics);
  return j;
}

std::string dump(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gridnode::collector
