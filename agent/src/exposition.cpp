#include "gridnode/agent/exposition.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <cstdlib>
#include <numeric>

#include "gridnode/agent/driver_metrics.hpp"

namespace gridnode::agent {
namespace {

using drivers::Catalog;
using drivers::Family;
using drivers::MetricType;

void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_header(std::string& out, std::string_view name, std::string_view help,
                   MetricType type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  append_help(out, help);
  out += "\n# TYPE ";
  out += name;
  out += type == MetricType::counter ? " counter\n" : " gauge\n";
}

void append_value(std::string& out, drivers::Value v, drivers::Scale s) {
  std::array<char, 64> buf{};
  std::size_t n = drivers::format_value(v, s, std::span<char, 64>(buf));
  out.append(buf.data(), n);
}

std::string label_of(const drivers::Labels& labels, std::string_view key) {
  for (const auto& [k, v] : labels) {
    if (k == key) {
      return v;
    }
  }
  return {};
}

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// Calls fn(slot, series, family, value) for every current sample, driver order, then reading
// order.
template <class Fn>
void for_each_sample(const Sampler& sampler, Fn&& fn) {
  for (const auto& slot : sampler.slots()) {
    const auto& sweep = slot.front;
    if (!sweep.catalog) {
      continue;
    }
    for (const auto& r : sweep.readings) {
      const auto& series = sweep.catalog->series[r.series];
      fn(slot, series, sweep.catalog->families[series.family], r.value);
    }
  }
}

// Own metrics: spelled once, here.
constexpr std::string_view kUp = kDriverUpMetric;
constexpr std::string_view kErrors = "gridnode_driver_errors_total";
constexpr std::string_view kDuration = "gridnode_sweep_duration_seconds";
constexpr std::string_view kSamples = "gridnode_driver_samples";
constexpr std::string_view kBuildInfo = "gridnode_build_info";

}  // namespace

std::string_view version() { return GRIDNODE_VERSION; }

void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

Exposition::Cache& Exposition::cache_for(std::size_t driver,
                                         const std::shared_ptr<const Catalog>& catalog) {
  if (caches_.size() <= driver) {
    caches_.resize(driver + 1);
  }
  Cache& c = caches_[driver];
  if (c.catalog == catalog) {
    return c;
  }
  // A new catalog (discovery changed something): rebuild the text that only depends on it.
  c.catalog = catalog;
  c.order.resize(catalog->series.size());
  std::iota(c.order.begin(), c.order.end(), 0u);
  std::stable_sort(c.order.begin(), c.order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return catalog->series[a].family < catalog->series[b].family;
  });
  c.prefixes.clear();
  for (const auto& s : catalog->series) {
    std::string p = catalog->families[s.family].name;
    if (!s.labels.empty()) {
      p += '{';
      for (std::size_t i = 0; i < s.labels.size(); ++i) {
        if (i != 0) {
          p += ',';
        }
        p += s.labels[i].first;
        p += "=\"";
        append_label_value(p, s.labels[i].second);
        p += '"';
      }
      p += '}';
    }
    p += ' ';
    c.prefixes.push_back(std::move(p));
  }
  c.headers.clear();
  for (const auto& f : catalog->families) {
    std::string h;
    append_header(h, f.name, f.help, f.type);
    c.headers.push_back(std::move(h));
  }
  return c;
}

void Exposition::render_prometheus(const Sampler& sampler, std::string& out,
                                   const std::vector<bool>* include) {
  out.clear();
  const auto& slots = sampler.slots();
  auto included = [include](std::size_t d) {
    return include == nullptr || (d < include->size() && (*include)[d]);
  };
  // A family two drivers share (gridnode_accelerators from nvml and amdgpu) gets its
  // HELP and TYPE once: the text format allows no second one.
  headers_done_.clear();
  for (std::size_t d = 0; d < slots.size(); ++d) {
    const drivers::Sweep& sweep = slots[d].front;
    if (!sweep.catalog || sweep.readings.empty() || !included(d)) {
      continue;
    }
    Cache& c = cache_for(d, sweep.catalog);
    c.slot_of.assign(sweep.catalog->series.size(), -1);
    for (std::size_t i = 0; i < sweep.readings.size(); ++i) {
      c.slot_of[sweep.readings[i].series] = static_cast<std::int64_t>(i);
    }
    std::uint32_t current_family = UINT32_MAX;
    for (std::uint32_t s : c.order) {
      std::int64_t r = c.slot_of[s];
      if (r < 0) {
        continue;  // skipped this sweep (bad reading)
      }
      std::uint32_t f = sweep.catalog->series[s].family;
      if (f != current_family) {
        const std::string& name = sweep.catalog->families[f].name;
        if (d == 0 || std::find(headers_done_.begin(), headers_done_.end(), name) ==
                          headers_done_.end()) {
          out += c.headers[f];
        }
        headers_done_.push_back(name);
        current_family = f;
      }
      out += c.prefixes[s];
      append_value(out, sweep.readings[static_cast<std::size_t>(r)].value,
                   sweep.catalog->families[f].scale);
      out += '\n';
    }
  }

  auto per_driver = [&](std::string_view name, std::string_view help, MetricType type,
                        auto&& value_of) {
    append_header(out, name, help, type);
    for (std::size_t d = 0; d < slots.size(); ++d) {
      if (!included(d)) {
        continue;
      }
      const DriverSlot& slot = slots[d];
      out += name;
      out += "{driver=\"";
      append_label_value(out, slot.driver->name());
      out += "\"} ";
      out += value_of(slot);
      out += '\n';
    }
  };
  per_driver(kUp, kDriverUpHelp, MetricType::gauge,
             [](const DriverSlot& s) { return s.state == DriverState::up ? "1" : "0"; });
  per_driver(kErrors,
             "Readings skipped and sweeps failed or stalled, per driver, since gridnoded started.",
             MetricType::counter, [](const DriverSlot& s) { return std::to_string(s.errors_total); });
  per_driver(kDuration, "How long the driver's last sweep took, in seconds.", MetricType::gauge,
             [](const DriverSlot& s) {
               return drivers::format_value(drivers::Value::of_signed(s.last_duration.count()),
                                            {1, -9});
             });
  per_driver(kSamples, "How many samples the driver's last sweep produced.", MetricType::gauge,
             [](const DriverSlot& s) { return std::to_string(s.front.readings.size()); });
  append_header(out, kBuildInfo, "gridnode's version; constant 1.", MetricType::gauge);
  out += kBuildInfo;
  out += "{version=\"";
  out += version();
  out += "\"} 1\n";
}

nlohmann::json Exposition::samples_json(const Sampler& sampler) {
  nlohmann::json rows = nlohmann::json::array();
  for_each_sample(sampler, [&](const DriverSlot& slot, const drivers::Series& series,
                               const Family& f, drivers::Value value) {
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [k, v] : series.labels) {
      labels[k] = v;
    }
    nlohmann::json row = {{"name", f.name},
                          {"labels", std::move(labels)},
                          {"value", drivers::to_double(value, f.scale)},
                          {"unit", f.unit},
                          {"driver", slot.driver->name()}};
    if (value.is_signed) {
      row["raw"] = value.as_int64();
    } else {
      row["raw"] = value.bits;
    }
    row["scale"] = {{"mul", f.scale.mul}, {"exp10", f.scale.exp10}};
    rows.push_back(std::move(row));
  });
  return rows;
}

nlohmann::json Exposition::sensors_json(const Sampler& sampler) {
  // Sensors are keyed by (chip, sensor); each hwmon family contributes one property of it:
  // node_hwmon_temp_celsius is the input, node_hwmon_temp_crit_celsius the "crit" limit.
  struct Row {
    std::string driver, chip, chip_name, sensor, type, label, unit;
    std::map<std::string, double> props;
  };
  std::map<std::pair<std::string, std::string>, Row> rows;
  std::map<std::string, std::string> chip_names;
  auto row_for = [&](std::string_view driver, const std::string& chip,
                     const std::string& sensor) -> Row& {
    Row& r = rows[{chip, sensor}];
    r.driver = driver;
    r.chip = chip;
    r.sensor = sensor;
    return r;
  };
  // node_exporter's hwmon unit suffixes (hwmon_linux.go), longest first where one ends another.
  static constexpr std::array<std::string_view, 8> kUnits = {
      "joule_total", "celsius", "volts", "amps", "watt", "rpm", "seconds", "ratio"};
  for_each_sample(sampler, [&](const DriverSlot& slot, const drivers::Series& series,
                               const Family& f, drivers::Value raw) {
    double value = drivers::to_double(raw, f.scale);
    std::string_view name = f.name;
    if (name == "node_hwmon_chip_names") {
      chip_names[label_of(series.labels, "chip")] = label_of(series.labels, "chip_name");
      return;
    }
    if (name == "node_hwmon_sensor_label") {
      row_for(slot.driver->name(), label_of(series.labels, "chip"),
              label_of(series.labels, "sensor"))
          .label = label_of(series.labels, "label");
      return;
    }
    if (name.starts_with("node_hwmon_")) {
      // node_hwmon_<type>[_<property>][_<unit>]
      std::string_view rest = name.substr(11);
      std::string_view type = rest.substr(0, rest.find('_'));
      rest.remove_prefix(type.size());
      if (!rest.empty()) {
        rest.remove_prefix(1);
      }
      for (auto u : kUnits) {
        if (rest == u) {
          rest = {};
          break;
        }
        if (rest.size() > u.size() && rest.ends_with(u) && rest[rest.size() - u.size() - 1] == '_') {
          rest.remove_suffix(u.size() + 1);
          break;
        }
      }
      Row& row = row_for(slot.driver->name(), label_of(series.labels, "chip"),
                         label_of(series.labels, "sensor"));
      row.type = type;
      if (rest.empty() || rest == "input") {
        row.props["value"] = value;
        row.unit = f.unit;
      } else {
        row.props[std::string(rest)] = value;
        if (row.unit.empty()) {
          row.unit = f.unit;
        }
      }
      return;
    }
    if (name == "node_thermal_zone_temp") {
      Row& row = row_for(slot.driver->name(), "thermal_zone" + label_of(series.labels, "zone"),
                         "temp");
      row.type = "temp";
      row.label = label_of(series.labels, "type");
      row.props["value"] = value;
      row.unit = f.unit.empty() ? "°C" : f.unit;
      return;
    }
    if (name.starts_with("node_cooling_device_")) {
      std::string_view prop = name.substr(20);
      Row& row = row_for(slot.driver->name(), "cooling_device" + label_of(series.labels, "name"),
                         "state");
      row.type = "cooling";
      row.label = label_of(series.labels, "type");
      row.props[prop == "cur_state" ? "value" : std::string(prop == "max_state" ? "max" : prop)] =
          value;
      return;
    }
    if (name == "DCGM_FI_DEV_GPU_TEMP" || name == "DCGM_FI_DEV_MEMORY_TEMP" ||
        name == "DCGM_FI_DEV_POWER_USAGE" || name == "DCGM_FI_DEV_POWER_MGMT_LIMIT" ||
        name == "DCGM_FI_DEV_FAN_SPEED") {
      // A GPU is a chip named after its device node; its model is the chip name.
      std::string chip = label_of(series.labels, "device");
      chip_names[chip] = label_of(series.labels, "modelName");
      bool power = name == "DCGM_FI_DEV_POWER_USAGE" || name == "DCGM_FI_DEV_POWER_MGMT_LIMIT";
      bool fan = name == "DCGM_FI_DEV_FAN_SPEED";
      Row& row = row_for(slot.driver->name(), chip,
                         power ? "power" : fan ? "fan" : name == "DCGM_FI_DEV_GPU_TEMP" ? "gpu" : "memory");
      row.type = power ? "power" : fan ? "fan" : "temp";
      row.props[name == "DCGM_FI_DEV_POWER_MGMT_LIMIT" ? "max" : "value"] = value;
      row.unit = f.unit;
      return;
    }
    if (name == "gpu_edge_temperature" || name == "gpu_junction_temperature" ||
        name == "gpu_memory_temperature" || name == "gpu_power_usage") {
      std::string chip = "card" + label_of(series.labels, "gpu_id");
      chip_names[chip] = label_of(series.labels, "card_model");
      std::string_view sensor = name.substr(4);
      sensor.remove_suffix(sensor.ends_with("_temperature") ? 12 : 0);
      Row& row = row_for(slot.driver->name(), chip, std::string(sensor));
      row.type = name == "gpu_power_usage" ? "power" : "temp";
      row.props["value"] = value;
      row.unit = f.unit;
      return;
    }
    if (name == "gridnode_ipmi_sensor_threshold") {
      // The table's MIN, MAX and CRIT are the BMC's lower critical, upper non-critical and
      // upper critical thresholds; JSON has all six under their names.
      Row& row = row_for(slot.driver->name(), "bmc", "sdr" + label_of(series.labels, "id"));
      std::string t = label_of(series.labels, "threshold");
      row.props[t] = value;
      if (t == "lower_critical") {
        row.props["min"] = value;
      } else if (t == "upper_non_critical") {
        row.props["max"] = value;
      } else if (t == "upper_critical") {
        row.props["crit"] = value;
      }
      return;
    }
    if (name.starts_with("ipmi_") && slot.driver->name() == "ipmi") {
      // The BMC is one chip; its sensors are keyed by SDR record id, named by their SDR name.
      // ipmi_exporter's families give the value (ipmi_<type>_<unit>, ipmi_sensor_value) and the
      // state (ipmi_<type>_state, ipmi_sensor_state: 0 nominal, 1 warning, 2 critical).
      static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kTypes = {{
          {"ipmi_temperature_", "temp"}, {"ipmi_fan_speed_", "fan"}, {"ipmi_voltage_", "in"},
          {"ipmi_current_", "curr"},     {"ipmi_power_", "power"},   {"ipmi_sensor_", ""},
          {"ipmi_dcmi_", "power"}}};
      for (const auto& [prefix, type] : kTypes) {
        if (!name.starts_with(prefix)) {
          continue;
        }
        std::string id = label_of(series.labels, "id");
        if (id.empty()) {
          return;  // a BMC-wide value (chassis, SEL, up): not a sensor
        }
        Row& row = row_for(slot.driver->name(), "bmc", "sdr" + id);
        row.type = type.empty() ? label_of(series.labels, "type") : std::string(type);
        row.label = label_of(series.labels, "name");
        if (name.ends_with("_state")) {
          row.props["state"] = value;
          row.props["alarm"] = value;  // warning or critical: the table's ALARM
        } else {
          row.props["value"] = value;
          row.unit = f.unit;
        }
        return;
      }
      return;
    }
    if (name.starts_with("node_rapl_")) {
      std::string_view domain = name.substr(10);
      domain.remove_suffix(domain.ends_with("_joules_total") ? 13 : 0);
      Row& row = row_for(slot.driver->name(), "rapl:" + label_of(series.labels, "index"),
                         std::string(domain));
      row.type = "energy";
      row.label = label_of(series.labels, "path");
      row.props["value"] = value;
      row.unit = f.unit.empty() ? "J" : f.unit;
      return;
    }
  });
  nlohmann::json out = nlohmann::json::array();
  for (auto& [key, r] : rows) {
    bool has_alarm = std::any_of(r.props.begin(), r.props.end(),
                                 [](const auto& p) { return p.first.ends_with("alarm"); });
    if (!r.props.contains("value") && !has_alarm) {
      continue;  // a label or a setting (beep_enable, vrm) without a reading
    }
    nlohmann::json j = {{"driver", r.driver}, {"chip", r.chip},   {"sensor", r.sensor},
                        {"type", r.type},     {"label", r.label}, {"unit", r.unit}};
    if (auto it = chip_names.find(r.chip); it != chip_names.end()) {
      j["chip_name"] = it->second;
    }
    for (const auto& [k, v] : r.props) {
      // A hardware property called like a row key (tempN_type is a sensor's "type") must not
      // overwrite it.
      j[j.contains(k) ? "hw_" + k : k] = v;
    }
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json Exposition::gpus_json(const Sampler& sampler) {
  // Keyed by (driver's place in the sweep order, index): nvml's GPUs, amdgpu's cards, ascend's
  // NPUs (by npu-exporter's {id}).
  std::map<std::pair<std::size_t, long>, nlohmann::json> rows;
  std::vector<std::string_view> order;
  auto row_for = [&](std::string_view driver, const std::string& index) -> nlohmann::json& {
    long n = std::strtol(index.c_str(), nullptr, 10);
    auto at = std::find(order.begin(), order.end(), driver);
    if (at == order.end()) {
      at = order.insert(order.end(), driver);
    }
    nlohmann::json& r = rows[{static_cast<std::size_t>(at - order.begin()), n}];
    if (r.is_null()) {
      r = {{"driver", driver}, {"index", n}, {"health", "ok"}, {"processes", nlohmann::json::array()}};
    }
    return r;
  };
  // Which JSON key each accelerator metric feeds (dcgm-exporter's and AMD's exporter's names).
  static const std::map<std::string_view, std::string_view> kKeys = {
      {"DCGM_FI_DEV_GPU_TEMP", "temperature_celsius"},
      {"DCGM_FI_DEV_POWER_USAGE", "power_watts"},
      {"DCGM_FI_DEV_POWER_MGMT_LIMIT", "power_limit_watts"},
      {"DCGM_FI_DEV_GPU_UTIL", "utilization_percent"},
      {"DCGM_FI_DEV_FB_USED", "memory_used_mib"},
      {"DCGM_FI_DEV_FB_TOTAL", "memory_total_mib"},
      {"DCGM_FI_DEV_XID_ERRORS", "xid"},
      {"gpu_junction_temperature", "temperature_celsius"},
      {"gpu_power_usage", "power_watts"},
      {"gpu_gfx_activity", "utilization_percent"},
      {"gpu_used_vram", "memory_used_mib"},
      {"gpu_total_vram", "memory_total_mib"},
      {"npu_chip_info_temperature", "temperature_celsius"},
      {"npu_chip_info_power", "power_watts"},
      {"npu_chip_info_utilization", "utilization_percent"},
      {"npu_chip_info_hbm_used_memory", "memory_used_mib"},
      {"npu_chip_info_hbm_total_memory", "memory_total_mib"},
      {"npu_chip_info_error_code", "error_code"},
      {"mlu_temperature", "temperature_celsius"},
      {"mlu_power_usage", "power_watts"},
      {"mlu_utilization", "utilization_percent"}};
  for_each_sample(sampler, [&](const DriverSlot& slot, const drivers::Series& series,
                               const Family& f, drivers::Value raw) {
    const auto& l = series.labels;
    std::string_view name = f.name;
    double value = drivers::to_double(raw, f.scale);
    const bool process = name == "gridnode_gpu_process_memory_used_bytes";
    // The ascend driver's: npu-exporter's names, ours for up/degraded, the shared process one.
    bool ascend = slot.driver->name() == "ascend" &&
                  (name.starts_with("npu_chip_info_") || name.starts_with("gridnode_npu_") || process);
    // The cndev driver's: mlu-exporter's names, ours for up/degraded, the shared process one.
    bool mlu = slot.driver->name() == "cndev" &&
               (name.starts_with("mlu_") || name.starts_with("gridnode_mlu_") || process);
    bool nvidia = !ascend && !mlu &&
                  (name.starts_with("DCGM_FI_") || name.starts_with("gridnode_gpu_"));
    bool amd = name.starts_with("gpu_") && !label_of(l, "gpu_id").empty();
    if (!nvidia && !amd && !ascend && !mlu) {
      return;
    }
    nlohmann::json& r = row_for(
        slot.driver->name(),
        label_of(l, nvidia || process ? "gpu" : ascend ? "id" : mlu ? "mlu" : "gpu_id"));
    if (mlu && !process && !r.contains("model")) {
      r["model"] = label_of(l, "model");
      r["uuid"] = label_of(l, "uuid");
      r["serial_number"] = label_of(l, "sn");
    }
    if (ascend && !process && !r.contains("model")) {
      r["model"] = label_of(l, "model_name");
      r["uuid"] = label_of(l, "vdie_id");
      r["pci_bus_id"] = label_of(l, "pcie_bus_info");
    } else if (nvidia && !r.contains("model")) {
      r["model"] = label_of(l, "modelName");
      r["uuid"] = label_of(l, "UUID");
      r["pci_bus_id"] = label_of(l, "pci_bus_id");
      r["device"] = label_of(l, "device");
    } else if (amd && !r.contains("model")) {
      r["model"] = label_of(l, "card_model");
      r["serial_number"] = label_of(l, "serial_number");
    }
    if (name == "gridnode_gpu_process_memory_used_bytes") {
      r["processes"].push_back({{"pid", std::strtol(label_of(l, "pid").c_str(), nullptr, 10)},
                                {"uid", label_of(l, "uid")},
                                {"cgroup", label_of(l, "cgroup")},
                                {"memory_bytes", value}});
    } else if ((name == "gridnode_gpu_up" || name == "gridnode_npu_up" ||
                name == "gridnode_mlu_up") &&
               value == 0 && r["health"] == "ok") {
      r["health"] = "lost";
    } else if ((name == "gridnode_gpu_degraded" || name == "gridnode_npu_degraded" ||
                name == "gridnode_mlu_degraded") &&
               value != 0) {
      r["health"] = "degraded";
    } else if ((name == "npu_chip_info_health_status" || name == "mlu_health") && value == 0 &&
               r["health"] == "ok") {
      r["health"] = "alarm";  // DCMI reports a minor, major or critical alarm
    } else if (name == "mlu_memory_used" || name == "mlu_memory_total") {
      r[name == "mlu_memory_used" ? "memory_used_mib" : "memory_total_mib"] =
          value / (1024.0 * 1024.0);  // mlu-exporter's bytes
    } else if ((name == "npu_chip_info_used_memory" || name == "npu_chip_info_total_memory") &&
               !r.contains(name == "npu_chip_info_used_memory" ? "memory_used_mib"
                                                                : "memory_total_mib")) {
      // A chip without HBM (310P) computes out of its DDR.
      r[name == "npu_chip_info_used_memory" ? "memory_used_mib" : "memory_total_mib"] = value;
    } else if (name == "gpu_edge_temperature" && !r.contains("temperature_celsius")) {
      r["temperature_celsius"] = value;  // a card without a junction sensor
    } else if (auto it = kKeys.find(name); it != kKeys.end()) {
      r[std::string(it->second)] = value;
    }
  });
  nlohmann::json out = nlohmann::json::array();
  for (auto& [key, r] : rows) {
    out.push_back(std::move(r));
  }
  return out;
}

nlohmann::json Exposition::status_json(const Sampler& sampler,
                                       std::chrono::steady_clock::time_point started,
                                       const std::string& config_source) {
  auto now = std::chrono::steady_clock::now();
  nlohmann::json drivers = nlohmann::json::array();
  for (const auto& s : sampler.slots()) {
    nlohmann::json d = {{"name", s.driver->name()},
                        {"state", to_string(s.state)},
                        {"samples", s.front.readings.size()},
                        {"errors_total", s.errors_total},
                        {"sweeps_total", s.sweeps_total},
                        {"last_sweep_seconds", seconds(s.last_duration)}};
    if (!s.last_error.empty()) {
      d["error"] = s.last_error;
    }
    if (s.last_success.time_since_epoch().count() != 0) {
      d["last_success_age_seconds"] = seconds(now - s.last_success);
    }
    drivers.push_back(std::move(d));
  }
  nlohmann::json j = {{"version", version()},
                      {"uptime_seconds", seconds(now - started)},
                      {"interval_seconds", seconds(sampler.interval())},
                      {"rounds", sampler.rounds()},
                      {"config", config_source},
                      {"drivers", std::move(drivers)}};
  if (sampler.last_round().time_since_epoch().count() != 0) {
    j["last_sweep_age_seconds"] = seconds(now - sampler.last_round());
  }
  return j;
}

}  // namespace gridnode::agent
