#include "gridnode/drivers/powercap.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "powercap/rapl.hpp"
#include "reading_plan.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "powercap";

// What one RAPL zone keeps beside its kept-open energy_uj: the state that carries its counter
// across wraps.
struct Zone {
  // max_energy_range_uj, read at discovery (it is fixed for a zone's life); nullopt when it
  // could not be read, which turns wrap correction off for the zone.
  std::optional<std::uint64_t> max_range;
  powercap::EnergyCounter counter;
  // A rediscovery must not restart the counter.
  void carry(const Zone& before) { counter = before.counter; }
};
using Plan = ReadingPlan<Zone>;

platform::Result<Value> parse_energy(Plan::Entry& zone, std::string_view text) {
  auto raw = platform::parse_uint64(text);
  if (!raw) {
    return tl::unexpected(raw.error());
  }
  return Value::of_unsigned(zone.state.counter.update(*raw, zone.state.max_range));
}

class PowercapDriver final : public Driver {
 public:
  // Linux 5.10 made energy_uj readable by root only (CVE-2020-8694, the PLATYPUS power side
  // channel): the plan says so once, louder than the per-reading debug line.
  explicit PowercapDriver(PowercapOptions options)
      : dir_(options.roots.sys("class/powercap")),
        plan_(kComponent, options.keep_files_open,
              "energy counters need root or CAP_DAC_READ_SEARCH") {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    return plan_.sweep(out, [this](Walk<Zone>& walk) { return discover(walk); }, parse_energy);
  }

 private:
  // Every entry of class/powercap with a readable `name` is a zone, as in procfs's
  // GetRaplZones: the intel-rapl:* and intel-rapl-mmio:* zones and their subzones, which sysfs
  // lists flat beside the control types (intel-rapl, intel-rapl-mmio have no `name`). Entries
  // are taken in sorted order, which the index of repeated names depends on. node_exporter
  // fails the collector when a zone's max_energy_range_uj is unreadable; we only lose the wrap
  // correction for that zone.
  platform::Result<void> discover(Walk<Zone>& walk) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    problems_.begin();
    // The label is node_exporter's filepath.Join(<sysfs>, "class/powercap", <zone>), cleaned.
    const std::string label_dir = powercap::clean_path(dir_);
    Catalog& catalog = walk.catalog;
    powercap::RaplNamer namer;
    for (const auto& entry : *names) {
      std::string base = dir_ + "/" + entry;
      auto zone_name = read_zone_name(base + "/name", walk);
      if (!zone_name) {
        continue;
      }
      auto [index, name] = namer.next(*zone_name);
      auto family =
          catalog.add_family({"node_rapl_" + powercap::sanitize_metric_name(name) + "_joules_total",
                              "Current RAPL " + name + " value in joules",
                              MetricType::counter,
                              {1, -6},
                              "J"});
      auto series = catalog.add_series(
          family, {{"index", std::to_string(index)}, {"path", label_dir + "/" + entry}});
      Zone zone;
      zone.max_range = read_max_range(base + "/max_energy_range_uj");
      walk.read(base + "/energy_uj", series, zone);
    }
    problems_.end();
    return {};
  }

  // The zone's name, trimmed. ENOENT/ENOTDIR mean "not a zone" (a control type, a stray file)
  // and are silent, as in procfs; any other failure is a zone we cannot name: skipped, counted.
  std::optional<std::string> read_zone_name(const std::string& path, Walk<Zone>& walk) {
    auto text = platform::read_small_file(path, plan_.buffer());
    if (!text) {
      auto code = text.error().code;
      if (code != std::errc::no_such_file_or_directory && code != std::errc::not_a_directory) {
        ++walk.errors;
        problems_.problem(path, "zone skipped", code.message());
      }
      return std::nullopt;
    }
    return std::string(platform::trim(*text));
  }

  std::optional<std::uint64_t> read_max_range(const std::string& path) {
    auto text = platform::read_small_file(path, plan_.buffer());
    if (!text) {
      problems_.problem(path, "no wrap correction", text.error().code.message());
      return std::nullopt;
    }
    auto value = platform::parse_uint64(*text);
    if (!value) {
      problems_.problem(path, "no wrap correction", value.error().code.message());
      return std::nullopt;
    }
    return *value;
  }

  std::string dir_;
  // energy_uj holds at most 20 digits; a zone name is a short identifier: the plan's 128-byte
  // buffer holds both.
  Plan plan_;
  WalkProblems problems_{kComponent};
};

}  // namespace

std::unique_ptr<Driver> make_powercap_driver(PowercapOptions options) {
  return std::make_unique<PowercapDriver>(std::move(options));
}

}  // namespace gridnode::drivers
