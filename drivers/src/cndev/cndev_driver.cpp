#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "accelerator/c_string.hpp"
#include "accelerator/device_set.hpp"
#include "accelerator/process_owner.hpp"
#include "accelerator/vendor_driver.hpp"
#include "accelerators.hpp"
#include "cndev/cndev_library.hpp"
#include "gridnode/drivers/cndev.hpp"
#include "gridnode/platform/log.hpp"

namespace gridnode::drivers {
namespace {

using namespace cndev;  // NOLINT: the CNDev ABI's names read best unqualified here

constexpr std::string_view kComponent = "cndev";

enum Metric : std::uint8_t {
  kTemperature,
  kChipTemperature,
  kPower,
  kMemoryTotal,
  kMemoryUsed,
  kUtilization,
  kHealth,
  kMetricCount
};

// mlu-exporter's names (its default `mlu` prefix, examples/metrics.yaml) and HELP texts, with
// its units: memory in B (CNDev gives MB), power in W.
Family metric_family(Metric m) {
  using T = MetricType;
  switch (m) {
    case kTemperature:
      return {"mlu_temperature",
              "The board temperature of Cambricon MLU, unit is 'celsius'",
              T::gauge,
              {},
              "°C"};
    case kChipTemperature:
      return {"mlu_chip_temperature",
              "The chip temperature of Cambricon MLU, unit is 'celsius'",
              T::gauge,
              {},
              "°C"};
    case kPower:
      return {
          "mlu_power_usage", "The power usage of Cambricon MLU, unit is 'w'", T::gauge, {}, "W"};
    case kMemoryTotal:
      return {"mlu_memory_total",
              "The total physical memory of Cambricon MLU, unit is 'B'",
              T::gauge,
              {},
              "B"};
    case kMemoryUsed:
      return {"mlu_memory_used",
              "The used physical memory of Cambricon MLU, unit is 'B'",
              T::gauge,
              {},
              "B"};
    case kUtilization:
      return {
          "mlu_utilization", "The utilization of Cambricon MLU, unit is '%'", T::gauge, {}, "%"};
    case kHealth:
      return {"mlu_health",
              "The health state of Cambricon MLU, 1 means health, 0 means sick",
              T::gauge,
              {},
              ""};
    case kMetricCount:
      break;
  }
  return {};
}

// What one MLU's worker read in one sweep.
struct MluRead {
  bool lost = false;
  std::uint64_t errors = 0;
  std::string first_error;
  std::array<std::optional<std::int64_t>, kMetricCount> values{};
  std::optional<std::int32_t> power_cap_w;
  std::uint64_t free_memory_bytes = 0;
  bool processes_ok = false;
  std::array<cndevProcessInfo_t, kMaxProcesses> processes{};
  std::uint32_t process_count = 0;
};

// CNDEV_ERROR_IN_PROBLEM ("MLU device is in problem") ends the MLU's read: it is lost until
// rediscovery. NOT_SUPPORTED is an absent field; anything else skips the field and counts.
bool answered(MluRead& r, cndevRet_t rc, const char* call) {
  if (rc == CNDEV_SUCCESS) {
    return true;
  }
  if (rc == CNDEV_ERROR_IN_PROBLEM) {
    r.lost = true;
  } else if (rc != CNDEV_ERROR_NOT_SUPPORTED) {
    if (r.errors++ == 0) {
      r.first_error = cndev_error(rc, call).message();
    }
  }
  return false;
}

constexpr int kMiB = 20;

void read_mlu(const Api& a, cndevDevice_t dev, MluRead& r) {
  auto set = [&](Metric m, std::int64_t v) { r.values[m] = v; };
  if (a.get_health) {
    cndevCardHealthState_t h{};
    h.version = CNDEV_VERSION_6;
    if (answered(r, a.get_health(&h, dev), "cndevGetCardHealthState")) {
      set(kHealth, h.health != 0 ? 1 : 0);
    }
  }
  if (r.lost) return;
  if (a.get_temperature) {
    cndevTemperatureInfo_t t{};
    t.version = CNDEV_VERSION_6;
    if (answered(r, a.get_temperature(&t, dev), "cndevGetTemperatureInfo")) {
      set(kTemperature, t.board);
      set(kChipTemperature, t.chip);
    }
  }
  if (r.lost) return;
  if (a.get_power) {
    cndevDevicePowerInfo_t p{};
    if (answered(r, a.get_power(&p, dev), "cndevGetDevicePowerInfo")) {
      set(kPower, p.usage);
      if (p.cap > 0) {
        r.power_cap_w = p.cap;
      }
    }
  }
  if (r.lost) return;
  if (a.get_memory) {
    cndevMemoryInfoV2_t m{};
    if (answered(r, a.get_memory(&m, dev), "cndevGetMemoryUsageV2")) {
      set(kMemoryTotal, m.physicalMemoryTotal << kMiB);
      set(kMemoryUsed, m.physicalMemoryUsed << kMiB);
      if (m.physicalMemoryTotal >= m.physicalMemoryUsed) {
        r.free_memory_bytes =
            static_cast<std::uint64_t>(m.physicalMemoryTotal - m.physicalMemoryUsed) << kMiB;
      }
    }
  }
  if (r.lost) return;
  if (a.get_utilization) {
    cndevUtilizationInfo_t u{};
    u.version = CNDEV_VERSION_6;
    if (answered(r, a.get_utilization(&u, dev), "cndevGetDeviceUtilizationInfo")) {
      set(kUtilization, u.averageCoreUtilization);
    }
  }
  if (r.lost) return;
  if (a.get_processes) {
    for (auto& p : r.processes) {
      p.version = CNDEV_VERSION_6;
    }
    std::uint32_t count = kMaxProcesses;
    cndevRet_t rc = a.get_processes(&count, r.processes.data(), dev);
    if (rc == CNDEV_ERROR_INSUFFICIENT_SPACE) {
      rc = CNDEV_SUCCESS;  // more than we keep: the first kMaxProcesses
      count = kMaxProcesses;
    }
    if (answered(r, rc, "cndevGetProcessInfo")) {
      r.processes_ok = true;
      r.process_count = std::min(count, kMaxProcesses);
    }
  }
}

struct Mlu {
  unsigned index = 0;
  cndevDevice_t handle = 0;
  std::string model, sn, uuid;
  Labels labels;  // mlu, model, sn, uuid
  std::uint32_t first_series = 0;
  accelerators::DeviceSlot slot;
  std::shared_ptr<MluRead> read = std::make_shared<MluRead>();
  std::optional<std::int64_t> last_health;
  platform::Complaint complaint;
};

struct Discovery {
  cndevRet_t init = CNDEV_SUCCESS;
  cndevRet_t count_rc = CNDEV_SUCCESS;
  struct Found {
    cndevRet_t rc = CNDEV_SUCCESS;
    cndevDevice_t handle = 0;
    std::string model, sn, uuid;
  };
  std::vector<Found> mlus;
};

void discover_on_worker(const Api& a, bool need_init, Discovery& d) {
  if (need_init) {
    d.init = a.init(0);
    if (d.init != CNDEV_SUCCESS) {
      return;
    }
  }
  cndevCardInfo_t cards{};
  cards.version = CNDEV_VERSION_6;
  d.count_rc = a.get_count(&cards);
  if (d.count_rc != CNDEV_SUCCESS) {
    return;
  }
  d.mlus.resize(std::min<std::uint32_t>(cards.number, 256));
  for (std::size_t i = 0; i < d.mlus.size(); ++i) {
    auto& f = d.mlus[i];
    f.rc = a.get_handle(static_cast<std::int32_t>(i), &f.handle);
    if (f.rc != CNDEV_SUCCESS) {
      continue;
    }
    if (a.get_name) {
      if (const char* name = a.get_name(f.handle); name != nullptr) {
        f.model = accelerators::from_c_buffer(name, 64);
      }
    }
    cndevUUID_t uuid{};
    uuid.version = CNDEV_VERSION_6;
    if (a.get_uuid && a.get_uuid(&uuid, f.handle) == CNDEV_SUCCESS) {
      f.uuid = accelerators::from_c_buffer(uuid.uuid, sizeof uuid.uuid);
    }
    cndevCardSN_t sn{};
    sn.version = CNDEV_VERSION_6;
    if (a.get_sn && a.get_sn(&sn, f.handle) == CNDEV_SUCCESS) {
      std::array<char, 24> buf{};
      // mlu-exporter's sn label: fmt.Sprintf("%x", sn).
      std::snprintf(buf.data(), buf.size(), "%llx", static_cast<unsigned long long>(sn.sn));
      f.sn = buf.data();
    }
  }
}

class CndevDriver final : public accelerators::VendorDriver<Library> {
 public:
  explicit CndevDriver(CndevOptions options)
      : VendorDriver("CNDev", "MLU"), options_(std::move(options)) {}

  ~CndevDriver() override {
    bool any_busy = control_ && control_->worker().busy();
    for (const auto& m : mlus_) {
      any_busy = any_busy || m.slot.worker->busy();
    }
    if (lib_ && initialized_ && !any_busy && lib_->api().release) {
      auto lib = lib_;
      control_->worker().submit([lib] { lib->api().release(); });
      control_->worker().wait_until(std::chrono::steady_clock::now() + options_.call_timeout);
    }
  }

  std::string_view name() const override { return kComponent; }

 private:
  const std::string& library_path() const override { return options_.library; }
  bool no_device() const override { return mlus_.empty(); }
  void read_devices(Sweep& out) override { read_mlus(out); }

  platform::Result<void> discover(Sweep& out, bool need_init) override {
    auto d = std::make_shared<Discovery>();
    auto lib = lib_;
    auto ran =
        control_->call([lib, d, need_init] { discover_on_worker(lib->api(), need_init, *d); },
                       need_init ? "cndevInit" : "cndevGetDeviceCount", options_.call_timeout);
    if (!ran) {
      return ran;
    }
    if (d->init == CNDEV_ERROR_NO_DRIVER || d->init == CNDEV_ERROR_NO_DEVICES) {
      // The library is there, the kernel driver or its devices are not: absent, not down.
      return platform::fail(
          std::errc::no_such_file_or_directory,
          "cndevInit (" + lib_->path() + "): " + cndev_error(d->init, "").code.message());
    }
    if (d->init != CNDEV_SUCCESS) {
      return tl::unexpected(cndev_error(d->init, "cndevInit (" + lib_->path() + ")"));
    }
    initialized_ = true;
    if (d->count_rc != CNDEV_SUCCESS) {
      return tl::unexpected(cndev_error(d->count_rc, "cndevGetDeviceCount"));
    }
    build(*d, out);
    return {};
  }

  void build(const Discovery& d, Sweep& out) {
    std::vector<Mlu> mlus(d.mlus.size());
    for (std::size_t i = 0; i < d.mlus.size(); ++i) {
      const auto& f = d.mlus[i];
      Mlu& m = mlus[i];
      m.index = static_cast<unsigned>(i);
      m.handle = f.handle;
      m.model = f.model;
      m.sn = f.sn;
      m.uuid = f.uuid;
      m.labels = {{"mlu", std::to_string(i)}, {"model", m.model}, {"sn", m.sn}, {"uuid", m.uuid}};
      if (f.rc != CNDEV_SUCCESS) {
        m.slot.lost = true;
        platform::log(platform::Level::warning, kComponent,
                      platform::LogLine("MLU not usable")
                          .kv("mlu", i)
                          .kv("err", cndev_error(f.rc, "cndevGetDeviceHandleByIndex").message()));
        if (f.rc == CNDEV_ERROR_IN_PROBLEM) {
          out.events.push_back(lost_event(m));
        }
      }
    }
    mlus_ = std::move(mlus);
    Catalog c;
    count_series_ = c.add_series(c.add_family({"machine_mlu_nums",
                                               "The number of Cambricon MLUs in a node",
                                               MetricType::gauge,
                                               {},
                                               ""}),
                                 {});
    std::array<std::uint32_t, kMetricCount> fam{};
    for (int k = 0; k < kMetricCount; ++k) {
      fam[k] = c.add_family(metric_family(static_cast<Metric>(k)));
    }
    auto up = c.add_family({"gridnode_mlu_up",
                            "Whether the MLU answers CNDev (0: in problem, or a call to it hung).",
                            MetricType::gauge,
                            {},
                            ""});
    auto degraded = c.add_family({"gridnode_mlu_degraded",
                                  "Whether a CNDev call to the MLU is still running past its "
                                  "deadline.",
                                  MetricType::gauge,
                                  {},
                                  ""});
    for (auto& m : mlus_) {
      m.first_series = static_cast<std::uint32_t>(c.series.size());
      for (int k = 0; k < kMetricCount; ++k) {
        c.add_series(fam[k], m.labels);
      }
      c.add_series(up, m.labels);
      c.add_series(degraded, m.labels);
    }
    summary_series_ = accelerators::add_summary(c, "cambricon");
    process_family_ = c.add_family(accelerators::process_family());
    base_catalog_ = std::make_shared<const Catalog>(std::move(c));
    processes_.reset();
    catalog_ = base_catalog_;
  }

  platform::Result<void> poll(Sweep& out) override {
    auto count = std::make_shared<std::pair<cndevRet_t, std::uint32_t>>(CNDEV_SUCCESS, 0);
    auto lib = lib_;
    auto ran = control_->call(
        [lib, count] {
          cndevCardInfo_t cards{};
          cards.version = CNDEV_VERSION_6;
          count->first = lib->api().get_count(&cards);
          count->second = cards.number;
        },
        "cndevGetDeviceCount", options_.call_timeout);
    if (!ran) {
      return ran;
    }
    if (count->first != CNDEV_SUCCESS) {
      return tl::unexpected(cndev_error(count->first, "cndevGetDeviceCount"));
    }
    if (count->second != mlus_.size()) {
      platform::log(platform::Level::notice, kComponent,
                    platform::LogLine("MLU count changed, discovering again")
                        .kv("before", static_cast<std::int64_t>(mlus_.size()))
                        .kv("now", count->second));
      return discover(out, false);
    }
    return {};
  }

  static std::string who(const Mlu& m) {
    return "MLU " + std::to_string(m.index) + " (" + m.uuid + ")";
  }
  static Labels event_fields(const Mlu& m) {
    return {{"mlu", std::to_string(m.index)}, {"sn", m.sn}, {"uuid", m.uuid}};
  }
  static DeviceEvent lost_event(const Mlu& m) {
    return accelerators::lost_event(kComponent, who(m), "CNDEV_ERROR_IN_PROBLEM", event_fields(m));
  }

  void health_change(Mlu& m, std::int64_t now, Sweep& out) {
    if (m.last_health == now || (!m.last_health && now == 1)) {
      m.last_health = now;
      return;
    }
    DeviceEvent ev;
    ev.severity = now == 1 ? 6 : 3;
    ev.message = who(m) + (now == 1 ? ": healthy again" : ": CNDev reports it sick");
    ev.fields = event_fields(m);
    ev.fields.emplace_back("health", std::to_string(now));
    std::sort(ev.fields.begin(), ev.fields.end());
    platform::log(now == 1 ? platform::Level::notice : platform::Level::warning, kComponent,
                  platform::LogLine(ev.message));
    out.events.push_back(std::move(ev));
    m.last_health = now;
  }

  void read_mlus(Sweep& out) {
    accelerators::read_all(
        mlus_, [](Mlu& m) -> accelerators::DeviceSlot& { return m.slot; },
        [&](Mlu& m) {
          auto lib = lib_;
          m.read = std::make_shared<MluRead>();
          auto read = m.read;
          cndevDevice_t dev = m.handle;
          m.slot.worker->submit([lib, read, dev] { read_mlu(lib->api(), dev, *read); });
        },
        options_.call_timeout);
    out.catalog = catalog_;
    out.readings.push_back(
        {count_series_, Value::of_signed(static_cast<std::int64_t>(mlus_.size()))});
    std::vector<Labels> keys;
    std::vector<std::uint64_t> memory;
    accelerators::Summary summary;
    summary.total = static_cast<std::int64_t>(mlus_.size());
    for (auto& m : mlus_) {
      auto settled = accelerators::settle(m.slot, m.slot.fresh && m.read->lost);
      accelerators::push_health_change(
          out, settled.change, [&] { return lost_event(m); }, kComponent, [&] { return who(m); },
          "a CNDev call", options_.call_timeout, [&] { return event_fields(m); });
      push(out, m.first_series + kMetricCount, settled.answering ? 1 : 0);
      push(out, m.first_series + kMetricCount + 1, m.slot.degraded ? 1 : 0);
      if (!settled.answering) {
        continue;
      }
      const MluRead& r = *m.read;
      for (int k = 0; k < kMetricCount; ++k) {
        if (r.values[k]) {
          push(out, m.first_series + k, *r.values[k]);
        }
      }
      if (r.values[kHealth]) {
        health_change(m, *r.values[kHealth], out);
      }
      out.errors += r.errors;
      if (r.errors > 0 && m.complaint.complain()) {
        platform::log(
            platform::Level::debug, kComponent,
            platform::LogLine("reading skipped").kv("mlu", m.index).kv("err", r.first_error));
      } else if (r.errors == 0) {
        m.complaint.release();
      }
      bool in_use =
          (r.processes_ok && r.process_count > 0) || r.values[kUtilization].value_or(0) > 0;
      (in_use ? summary.busy : summary.idle) += 1;
      summary.free_memory_bytes += r.free_memory_bytes;
      if (r.power_cap_w && r.values[kPower]) {
        summary.power_headroom_mw +=
            std::max<std::int64_t>(0, (*r.power_cap_w - *r.values[kPower]) * 1000);
      }
      for (std::uint32_t p = 0; p < r.process_count; ++p) {
        const auto& proc = r.processes[p];
        auto owner = accelerators::process_owner(options_.roots, proc.pid);
        keys.push_back({{"gpu", std::to_string(m.index)},
                        {"UUID", m.uuid},
                        {"pid", std::to_string(proc.pid)},
                        {"uid", std::move(owner.uid)},
                        {"cgroup", std::move(owner.cgroup)}});
        memory.push_back(proc.physicalMemoryUsed << 10);  // KiB
      }
    }
    accelerators::push_summary(out, summary_series_, summary);
    processes_.publish(keys, memory, ~std::uint64_t{0}, base_catalog_, process_family_, catalog_,
                       out);
  }

  static void push(Sweep& out, std::uint32_t series, std::int64_t v) {
    out.readings.push_back({series, Value::of_signed(v)});
  }

  CndevOptions options_;
  std::vector<Mlu> mlus_;
  std::shared_ptr<const Catalog> base_catalog_;
  std::shared_ptr<const Catalog> catalog_;
  std::uint32_t count_series_ = 0;
  std::uint32_t summary_series_ = 0;
  std::uint32_t process_family_ = 0;
  accelerators::ProcessSeries processes_;
};

}  // namespace

std::unique_ptr<Driver> make_cndev_driver(CndevOptions options) {
  return std::make_unique<CndevDriver>(std::move(options));
}

}  // namespace gridnode::drivers
