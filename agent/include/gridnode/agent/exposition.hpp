#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gridnode/agent/sampler.hpp"
#include "gridnode/drivers/driver.hpp"

namespace gridnode::agent {

// The version string of this build ("0.1.0").
std::string_view version();

// Renders what the sampler holds, for Prometheus and for people. Keeps per-catalog caches of
// the text that does not change between sweeps (HELP/TYPE lines, `name{labels} ` prefixes),
// so a render is mostly appends. Loop thread only.
class Exposition {
 public:
  // Prometheus text exposition format 0.0.4: every driver's samples grouped by family, then
  // gridnoded's own health (gridnode_driver_up{driver}, gridnode_driver_errors_total{driver},
  // gridnode_sweep_duration_seconds{driver}, ...). Values are exact decimal text.
  // `include`: null renders every driver; otherwise only the drivers whose slot index is true
  // (the scrape's collect[]/exclude[]), their samples and their gridnode_driver_* lines; it must
  // hold one entry per sampler slot. `out` is cleared first; its capacity is kept.
  void render_prometheus(const Sampler& sampler, std::string& out,
                         const std::vector<bool>* include = nullptr);

  // Every current sample as JSON objects {name, labels{}, value (float), raw (exact integer),
  // unit, driver}, driver order, then catalog order.
  static nlohmann::json samples_json(const Sampler& sampler);

  // The sensor readings a technician wants, one row per sensor: hwmon inputs with their
  // limits, thermal zones, cooling devices, RAPL counters: {chip, sensor, type, label, value,
  // unit, min?, max?, crit?, alarm?}. Rows sorted by chip then sensor.
  static nlohmann::json sensors_json(const Sampler& sampler);

  // One row per accelerator (nvml's GPUs, then amdgpu's cards), what a technician checks first:
  // {driver, index, model, uuid?, pci_bus_id?, device?, health ("ok", "degraded", "lost"),
  // temperature_celsius?, power_watts?, power_limit_watts?, utilization_percent?,
  // memory_used_mib?, memory_total_mib?, xid?, processes: [{pid, uid, cgroup, memory_bytes}]}.
  static nlohmann::json gpus_json(const Sampler& sampler);

  // gridnoded's own state: version, uptime, drivers with state/last error/sweep duration.
  static nlohmann::json status_json(const Sampler& sampler,
                                    std::chrono::steady_clock::time_point started,
                                    const std::string& config_source);

 private:
  struct Cache {
    std::shared_ptr<const drivers::Catalog> catalog;
    std::vector<std::uint32_t> order;    // series indices grouped by family
    std::vector<std::string> prefixes;   // per series: `name{k="v"} `
    std::vector<std::string> headers;    // per family: "# HELP ...\n# TYPE ...\n"
    std::vector<std::int64_t> slot_of;   // scratch: series -> reading index, -1 if none
  };
  Cache& cache_for(std::size_t driver, const std::shared_ptr<const drivers::Catalog>& catalog);

  std::vector<Cache> caches_;
  std::vector<std::string_view> headers_done_;  // families whose HELP/TYPE this render wrote
};

// Escapes a label value for the text format (backslash, double quote, newline).
void append_label_value(std::string& out, std::string_view value);

}  // namespace gridnode::agent
