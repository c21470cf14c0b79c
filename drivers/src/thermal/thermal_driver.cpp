#include "gridnode/drivers/thermal.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "thermal/thermal_parse.hpp"
#include "rediscovery.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "thermal";

// node_exporter 1.5.0's names and HELP texts, verbatim (collector/thermal_zone_linux.go).
Family zone_temp_family() {
  return {
      "node_thermal_zone_temp", "Zone temperature in Celsius", MetricType::gauge, {1, -3}, "°C"};
}
Family cur_state_family() {
  return {"node_cooling_device_cur_state",
          "Current throttle state of the cooling device",
          MetricType::gauge,
          {1, 0},
          ""};
}
Family max_state_family() {
  return {"node_cooling_device_max_state",
          "Maximum throttle state of the cooling device",
          MetricType::gauge,
          {1, 0},
          ""};
}

// One reading: a kept-open file and the series it feeds. Every thermal value (temp, cur_state,
// max_state) is a signed decimal integer: temperatures go below zero, and intel_powerclamp
// writes -1 as cur_state when idle injection is off.
struct Entry {
  platform::KernelFile file;
  std::uint32_t series = 0;
  // Read successfully at least once. Only then does ENOENT/ENODEV mean "vanished" and call for
  // discovery; a file missing from the start would otherwise rediscover on every sweep.
  bool seen_ok = false;
  platform::Complaint complaint;
};

Entry make_entry(std::string path, std::uint32_t series) {
  Entry entry;
  entry.file = platform::KernelFile(std::move(path));
  entry.series = series;
  return entry;
}

class ThermalDriver final : public Driver {
 public:
  explicit ThermalDriver(ThermalOptions options)
      : options_(std::move(options)), dir_(options_.roots.sys("class/thermal")) {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    if (rediscovery_.due()) {
      auto found = discover(out);
      if (!found) {
        // Keep nothing that points into a tree that is gone; try again next sweep.
        plan_.clear();
        catalog_.reset();
        rediscovery_.request();
        return found;
      }
      rediscovery_.done();
    }
    out.catalog = catalog_;
    for (auto& entry : plan_) {
      read_entry(entry, out);
    }
    return {};
  }

 private:
  // Walks class/thermal and rebuilds the plan. node_exporter (procfs ClassThermalZoneStats)
  // reads type, policy, temp, mode and passive of every thermal_zone[0-9]*, and type, max_state,
  // cur_state of every cooling_device[0-9]*, and fails the collector if any of them is missing
  // or unparsable. We need only `type` (for the label) and the value files: policy, mode and
  // passive feed nothing it exports, and 1.5.0 reports a zone whose mode is "disabled" too.
  platform::Result<void> discover(Sweep& out) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    Catalog catalog;
    std::vector<Entry> plan;
    for (const auto& entry : *names) {
      std::string base = dir_ + "/" + entry;
      if (auto zone = thermal::parse_class_index(entry, thermal::kZonePrefix)) {
        auto type = read_label(base + "/type", out);
        if (!type) {
          continue;
        }
        auto family = catalog.add_family(zone_temp_family());
        auto series = catalog.add_series(family, {{"zone", std::string(*zone)}, {"type", *type}});
        plan.push_back(make_entry(base + "/temp", series));
      } else if (auto cdev = thermal::parse_class_index(entry, thermal::kCoolingPrefix)) {
        auto type = read_label(base + "/type", out);
        if (!type) {
          continue;
        }
        Labels labels{{"name", std::string(*cdev)}, {"type", *type}};
        auto cur = catalog.add_series(catalog.add_family(cur_state_family()), labels);
        auto max = catalog.add_series(catalog.add_family(max_state_family()), std::move(labels));
        plan.push_back(make_entry(base + "/cur_state", cur));
        plan.push_back(make_entry(base + "/max_state", max));
      }
    }
    adopt_open_files(plan);
    plan_ = std::move(plan);
    // Same set as before: keep the pointer, so that consumers see "catalog unchanged".
    if (!catalog_ || *catalog_ != catalog) {
      catalog_ = std::make_shared<const Catalog>(std::move(catalog));
    }
    return {};
  }

  // Carries open descriptors and per-reading state over from the previous plan, so that a
  // rediscovery costs no reopen and a persistent problem still logs only once.
  void adopt_open_files(std::vector<Entry>& plan) {
    if (plan_.empty()) {
      return;
    }
    std::unordered_map<std::string_view, Entry*> old;
    for (auto& entry : plan_) {
      old.emplace(entry.file.path(), &entry);
    }
    for (auto& entry : plan) {
      auto it = old.find(entry.file.path());
      if (it != old.end()) {
        Entry& before = *it->second;
        entry.file = std::move(before.file);
        entry.seen_ok = before.seen_ok;
        entry.complaint = before.complaint;
      }
    }
  }

  // A label file (type), trimmed as procfs's SysReadFile does. A zone whose type cannot be read
  // has no labels, so it is skipped, counted and logged once.
  std::optional<std::string> read_label(const std::string& path, Sweep& out) {
    auto text = platform::read_small_file(path, buf_);
    if (!text) {
      ++out.errors;
      if (logged_.insert(path).second) {
        platform::log(platform::Level::debug, kComponent,
                      platform::LogLine("device skipped")
                          .kv("path", path)
                          .kv("err", text.error().code.message()));
      }
      return std::nullopt;
    }
    return std::string(platform::trim(*text));
  }

  void read_entry(Entry& entry, Sweep& out) {
    auto text = entry.file.read(buf_, options_.keep_files_open);
    if (!text) {
      auto code = text.error().code;
      // sysfs answers ENODEV on a kept-open file whose device went away; a reopen gives ENOENT.
      if (entry.seen_ok &&
          (code == std::errc::no_such_file_or_directory || code == std::errc::no_such_device)) {
        rediscovery_.request();
      }
      skip(entry, out, code);
      return;
    }
    auto value = platform::parse_int64(*text);
    if (!value) {
      skip(entry, out, value.error().code);
      return;
    }
    entry.seen_ok = true;
    if (entry.complaint.release()) {
      platform::log(platform::Level::debug, kComponent,
                    platform::LogLine("reading recovered").kv("path", entry.file.path()));
    }
    out.readings.push_back(Reading{entry.series, Value::of_signed(*value)});
  }

  void skip(Entry& entry, Sweep& out, std::error_code code) {
    ++out.errors;
    if (entry.complaint.complain()) {
      platform::log(platform::Level::debug, kComponent,
                    platform::LogLine("reading skipped")
                        .kv("path", entry.file.path())
                        .kv("err", code.message()));
    }
  }

  ThermalOptions options_;
  std::string dir_;
  std::vector<Entry> plan_;
  std::shared_ptr<const Catalog> catalog_;
  Rediscovery rediscovery_;
  // Discovery problems already logged (by path), so that a broken device logs once, not once
  // per rediscovery.
  std::set<std::string> logged_;
  // Thermal attributes are a few bytes; "type" is at most THERMAL_NAME_LENGTH (20).
  std::array<char, 128> buf_{};
};

}  // namespace

std::unique_ptr<Driver> make_thermal_driver(ThermalOptions options) {
  return std::make_unique<ThermalDriver>(std::move(options));
}

}  // namespace gridnode::drivers
