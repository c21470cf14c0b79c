#include "gridnode/agent/report_builder.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>

#include "gridnode/agent/driver_metrics.hpp"
#include "gridnode/platform/files.hpp"

namespace gridnode::agent {
namespace {

std::uint8_t severity_of(DriverState state) {
  switch (state) {
    case DriverState::up: return 6;       // info
    case DriverState::absent: return 5;   // notice
    default: return 4;                    // warning: down, stalled
  }
}

}  // namespace

bool ReportBuilder::refresh_catalog(const std::vector<DriverSlot>& slots) {
  bool same = merged_ && seen_.size() == slots.size();
  for (std::size_t i = 0; same && i < slots.size(); ++i) {
    same = seen_[i] == slots[i].front.catalog;
  }
  if (same) {
    return false;
  }
  // A driver published a new catalog (rare: discovery found a change). Merge again: families
  // are shared by name, each driver's series stay one block so readings map by an offset.
  platform::Catalog merged;
  seen_.assign(slots.size(), nullptr);
  offset_.assign(slots.size(), 0);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    seen_[i] = slots[i].front.catalog;
    offset_[i] = merged.series.size();
    if (!seen_[i]) {
      continue;
    }
    const platform::Catalog& c = *seen_[i];
    std::vector<std::uint32_t> family_map(c.families.size());
    for (std::size_t f = 0; f < c.families.size(); ++f) {
      family_map[f] = merged.add_family(c.families[f]);
    }
    for (const auto& s : c.series) {
      merged.add_series(family_map[s.family], s.labels);
    }
  }
  std::uint32_t up = merged.add_family(platform::Family{
      std::string(kDriverUpMetric), std::string(kDriverUpHelp),
      platform::MetricType::gauge, {}, ""});
  up_series_.assign(slots.size(), 0);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    up_series_[i] = merged.add_series(up, {{"driver", std::string(slots[i].driver->name())}});
  }
  catalog_ = protocol::EncodedCatalog::of(std::move(merged));
  values_.assign(catalog_.catalog.series.size(), protocol::Slot{});
  merged_ = true;
  return true;
}

void ReportBuilder::collect_events(const std::vector<DriverSlot>& slots) {
  events_.clear();
  last_state_.resize(slots.size(), DriverState::pending);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const DriverSlot& s = slots[i];
    if (s.state == last_state_[i] || s.state == DriverState::pending) {
      continue;
    }
    protocol::Event e;
    e.kind = protocol::EventKind::driver_state;
    e.severity = severity_of(s.state);
    e.source = std::string(s.driver->name());
    e.message = s.state == DriverState::up ? "up" : s.last_error;
    e.fields = {{"from", std::string(to_string(last_state_[i]))},
                {"state", std::string(to_string(s.state))}};
    events_.push_back(std::move(e));
    last_state_[i] = s.state;
  }
  // A report is built once per round, from the device events that came back since the last
  // one (DriverSlot::new_events): each event is carried exactly once.
  for (const DriverSlot& s : slots) {
    for (const auto& d : s.new_events) {
      protocol::Event e{protocol::EventKind::device, d.severity, std::string(s.driver->name()),
                        d.message, d.fields};
      std::sort(e.fields.begin(), e.fields.end());  // the wire wants them sorted by key
      events_.push_back(std::move(e));
    }
  }
  // The report holds at most kMaxEvents; what does not fit waits for the next one.
  std::size_t room = protocol::kMaxEvents - std::min(events_.size(), protocol::kMaxEvents);
  std::size_t n = std::min(room, extra_events_.size());
  for (std::size_t i = 0; i < n; ++i) {
    events_.push_back(std::move(extra_events_[i]));
  }
  extra_events_.erase(extra_events_.begin(), extra_events_.begin() + static_cast<std::ptrdiff_t>(n));
}

bool ReportBuilder::build(const std::vector<DriverSlot>& slots, protocol::ReportHeader& header,
                          protocol::Bytes& message) {
  bool changed = refresh_catalog(slots);
  collect_events(slots);
  for (auto& v : values_) {
    v.present = false;
  }
  samples_ = 0;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const DriverSlot& s = slots[i];
    bool up = s.state == DriverState::up && s.front.catalog;
    values_[up_series_[i]] = {platform::Value::of_unsigned(up ? 1 : 0), true};
    ++samples_;
    if (!up) {
      continue;  // a down or stalled driver's last values are stale: absent, not repeated
    }
    const std::size_t base = offset_[i];
    const std::size_t limit = s.front.catalog->series.size();
    for (const auto& r : s.front.readings) {
      if (r.series < limit) {
        values_[base + r.series] = {r.value, true};
        ++samples_;
      }
    }
  }
  encoder_.encode(catalog_, header, events_, values_, message);
  return changed;
}

platform::Result<protocol::BootId> read_boot_id(const platform::Roots& roots) {
  std::string path = roots.proc("sys/kernel/random/boot_id");
  std::array<char, 64> buf{};
  auto text = platform::read_small_file(path, buf);
  if (!text) {
    return tl::unexpected(text.error());
  }
  std::string hex;
  for (char c : platform::trim(*text)) {
    if (c != '-') {
      hex += c;
    }
  }
  protocol::BootId id{};
  if (!crypto::from_hex(hex, id)) {
    return platform::fail(std::errc::bad_message, path + ": not a UUID");
  }
  return id;
}

std::string host_node_id() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') {
    return "localhost";
  }
  std::string id(name.data());
  if (id.size() > 128) {
    id.resize(128);
  }
  for (char& c : id) {
    if (!protocol::valid_node_id(std::string_view(&c, 1))) {
      c = '-';
    }
  }
  return id;
}

}  // namespace gridnode::agent
