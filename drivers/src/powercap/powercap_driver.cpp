#include "gridnode/drivers/powercap.hpp"

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
#include "powercap/rapl.hpp"
#include "rediscovery.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "powercap";

// One RAPL zone: its kept-open energy_uj and the state that carries its counter across wraps.
struct Zone {
  platform::KernelFile file;
  std::uint32_t series = 0;
  // max_energy_range_uj, read at discovery (it is fixed for a zone's life); nullopt when it
  // could not be read, which turns wrap correction off for the zone.
  std::optional<std::uint64_t> max_range;
  powercap::EnergyCounter counter;
  // Read successfully at least once: only then does ENOENT/ENODEV mean "vanished".
  bool seen_ok = false;
  platform::Complaint complaint;
};

class PowercapDriver final : public Driver {
 public:
  explicit PowercapDriver(PowercapOptions options)
      : options_(std::move(options)), dir_(options_.roots.sys("class/powercap")) {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    if (rediscovery_.due()) {
      auto found = discover(out);
      if (!found) {
        plan_.clear();
        catalog_.reset();
        rediscovery_.request();
        return found;
      }
      rediscovery_.done();
    }
    out.catalog = catalog_;
    for (auto& zone : plan_) {
      read_zone(zone, out);
    }
    return {};
  }

 private:
  // Every entry of class/powercap with a readable `name` is a zone, as in procfs's
  // GetRaplZones: the intel-rapl:* and intel-rapl-mmio:* zones and their subzones, which sysfs
  // lists flat beside the control types (intel-rapl, intel-rapl-mmio have no `name`). Entries
  // are taken in sorted order, which the index of repeated names depends on. node_exporter
  // fails the collector when a zone's max_energy_range_uj is unreadable; we only lose the wrap
  // correction for that zone.
  platform::Result<void> discover(Sweep& out) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    // The label is node_exporter's filepath.Join(<sysfs>, "class/powercap", <zone>), cleaned.
    const std::string label_dir = powercap::clean_path(dir_);
    Catalog catalog;
    std::vector<Zone> plan;
    powercap::RaplNamer namer;
    for (const auto& entry : *names) {
      std::string base = dir_ + "/" + entry;
      auto zone_name = read_zone_name(base + "/name", out);
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
      zone.file = platform::KernelFile(base + "/energy_uj");
      zone.series = series;
      zone.max_range = read_max_range(base + "/max_energy_range_uj");
      plan.push_back(std::move(zone));
    }
    adopt_state(plan);
    plan_ = std::move(plan);
    if (!catalog_ || *catalog_ != catalog) {
      catalog_ = std::make_shared<const Catalog>(std::move(catalog));
    }
    return {};
  }

  // Carries each zone's open descriptor, counter state and complaint over from the previous
  // plan (matched by the energy_uj path), so that a rediscovery neither reopens files nor
  // restarts the counters.
  void adopt_state(std::vector<Zone>& plan) {
    if (plan_.empty()) {
      return;
    }
    std::unordered_map<std::string_view, Zone*> old;
    for (auto& zone : plan_) {
      old.emplace(zone.file.path(), &zone);
    }
    for (auto& zone : plan) {
      auto it = old.find(zone.file.path());
      if (it != old.end()) {
        Zone& before = *it->second;
        zone.file = std::move(before.file);
        zone.counter = before.counter;
        zone.seen_ok = before.seen_ok;
        zone.complaint = before.complaint;
      }
    }
  }

  // The zone's name, trimmed. ENOENT/ENOTDIR mean "not a zone" (a control type, a stray file)
  // and are silent, as in procfs; any other failure is a zone we cannot name: skipped, counted.
  std::optional<std::string> read_zone_name(const std::string& path, Sweep& out) {
    auto text = platform::read_small_file(path, buf_);
    if (!text) {
      auto code = text.error().code;
      if (code != std::errc::no_such_file_or_directory && code != std::errc::not_a_directory) {
        ++out.errors;
        log_once(path, "zone skipped", code);
      }
      return std::nullopt;
    }
    return std::string(platform::trim(*text));
  }

  std::optional<std::uint64_t> read_max_range(const std::string& path) {
    auto text = platform::read_small_file(path, buf_);
    if (!text) {
      log_once(path, "no wrap correction", text.error().code);
      return std::nullopt;
    }
    auto value = platform::parse_uint64(*text);
    if (!value) {
      log_once(path, "no wrap correction", value.error().code);
      return std::nullopt;
    }
    return *value;
  }

  void log_once(const std::string& path, std::string_view what, std::error_code code) {
    if (logged_.insert(path).second) {
      platform::log(platform::Level::debug, kComponent,
                    platform::LogLine(what).kv("path", path).kv("err", code.message()));
    }
  }

  void read_zone(Zone& zone, Sweep& out) {
    auto text = zone.file.read(buf_, options_.keep_files_open);
    if (!text) {
      auto code = text.error().code;
      if (zone.seen_ok &&
          (code == std::errc::no_such_file_or_directory || code == std::errc::no_such_device)) {
        rediscovery_.request();
      }
      if (code == std::errc::permission_denied && !warned_permission_) {
        // Linux 5.10 made energy_uj readable by root only (CVE-2020-8694, the PLATYPUS power
        // side channel). Say so once, louder than the per-reading debug line: it is a
        // deployment problem, not a sensor fault.
        warned_permission_ = true;
        platform::log(platform::Level::warning, kComponent,
                      platform::LogLine("energy counters need root or CAP_DAC_READ_SEARCH")
                          .kv("path", zone.file.path()));
      }
      skip(zone, out, code);
      return;
    }
    auto raw = platform::parse_uint64(*text);
    if (!raw) {
      skip(zone, out, raw.error().code);
      return;
    }
    zone.seen_ok = true;
    if (zone.complaint.release()) {
      platform::log(platform::Level::debug, kComponent,
                    platform::LogLine("reading recovered").kv("path", zone.file.path()));
    }
    out.readings.push_back(
        Reading{zone.series, Value::of_unsigned(zone.counter.update(*raw, zone.max_range))});
  }

  void skip(Zone& zone, Sweep& out, std::error_code code) {
    ++out.errors;
    if (zone.complaint.complain()) {
      platform::log(platform::Level::debug, kComponent,
                    platform::LogLine("reading skipped")
                        .kv("path", zone.file.path())
                        .kv("err", code.message()));
    }
  }

  PowercapOptions options_;
  std::string dir_;
  std::vector<Zone> plan_;
  std::shared_ptr<const Catalog> catalog_;
  Rediscovery rediscovery_;
  bool warned_permission_ = false;
  std::set<std::string> logged_;
  // energy_uj holds at most 20 digits; a zone name is a short identifier.
  std::array<char, 128> buf_{};
};

}  // namespace

std::unique_ptr<Driver> make_powercap_driver(PowercapOptions options) {
  return std::make_unique<PowercapDriver>(std::move(options));
}

}  // namespace gridnode::drivers
