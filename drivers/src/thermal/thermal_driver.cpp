#include "gridnode/drivers/thermal.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "reading_plan.hpp"
#include "thermal/thermal_parse.hpp"

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

// Every thermal value (temp, cur_state, max_state) is a signed decimal integer: temperatures
// go below zero, and intel_powerclamp writes -1 as cur_state when idle injection is off.
struct NoState {};
using Plan = ReadingPlan<NoState>;

platform::Result<Value> parse_value(Plan::Entry& /*entry*/, std::string_view text) {
  auto value = platform::parse_int64(text);
  if (!value) {
    return tl::unexpected(value.error());
  }
  return Value::of_signed(*value);
}

class ThermalDriver final : public Driver {
 public:
  explicit ThermalDriver(ThermalOptions options)
      : dir_(options.roots.sys("class/thermal")),
        plan_(kComponent, options.keep_files_open,
              "thermal readings need root or CAP_DAC_READ_SEARCH") {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    return plan_.sweep(out, [this](Walk<NoState>& walk) { return discover(walk); }, parse_value);
  }

 private:
  // Walks class/thermal. node_exporter (procfs ClassThermalZoneStats) reads type, policy, temp,
  // mode and passive of every thermal_zone[0-9]*, and type, max_state, cur_state of every
  // cooling_device[0-9]*, and fails the collector if any of them is missing or unparsable. We
  // need only `type` (for the label) and the value files: policy, mode and passive feed
  // nothing it exports, and 1.5.0 reports a zone whose mode is "disabled" too.
  platform::Result<void> discover(Walk<NoState>& walk) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    problems_.begin();
    Catalog& catalog = walk.catalog;
    for (const auto& entry : *names) {
      std::string base = dir_ + "/" + entry;
      if (auto zone = thermal::parse_class_index(entry, thermal::kZonePrefix)) {
        auto type = read_label(base + "/type", walk);
        if (!type) {
          continue;
        }
        auto family = catalog.add_family(zone_temp_family());
        auto series = catalog.add_series(family, {{"zone", std::string(*zone)}, {"type", *type}});
        walk.read(base + "/temp", series);
      } else if (auto cdev = thermal::parse_class_index(entry, thermal::kCoolingPrefix)) {
        auto type = read_label(base + "/type", walk);
        if (!type) {
          continue;
        }
        Labels labels{{"name", std::string(*cdev)}, {"type", *type}};
        auto cur = catalog.add_series(catalog.add_family(cur_state_family()), labels);
        auto max = catalog.add_series(catalog.add_family(max_state_family()), std::move(labels));
        walk.read(base + "/cur_state", cur);
        walk.read(base + "/max_state", max);
      }
    }
    problems_.end();
    return {};
  }

  // A label file (type), trimmed as procfs's SysReadFile does. A zone whose type cannot be read
  // has no labels, so it is skipped, counted and logged once.
  std::optional<std::string> read_label(const std::string& path, Walk<NoState>& walk) {
    auto text = platform::read_small_file(path, plan_.buffer());
    if (!text) {
      ++walk.errors;
      problems_.problem(path, "device skipped", text.error().code.message());
      return std::nullopt;
    }
    return std::string(platform::trim(*text));
  }

  std::string dir_;
  // Thermal attributes are a few bytes ("type" is at most THERMAL_NAME_LENGTH, 20): the
  // plan's 128-byte buffer holds them.
  Plan plan_;
  WalkProblems problems_{kComponent};
};

}  // namespace

std::unique_ptr<Driver> make_thermal_driver(ThermalOptions options) {
  return std::make_unique<ThermalDriver>(std::move(options));
}

}  // namespace gridnode::drivers
