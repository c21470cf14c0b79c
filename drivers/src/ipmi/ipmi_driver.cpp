#include "gridnode/drivers/ipmi.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "call_worker.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "ipmi/bmc.hpp"
#include "ipmi/freeipmi_bmc.hpp"

namespace gridnode::drivers {
namespace {

using ipmi::BmcReading;
using ipmi::SelChange;
using ipmi::SelEntry;
using ipmi::SelPosition;
using ipmi::SensorKind;
using ipmi::SensorReading;
using ipmi::SensorState;
using platform::Level;
using platform::LogLine;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kComponent = "ipmi";
constexpr std::string_view kPositionFile = "ipmi-sel.position";
// SEL entries handed over per sweep; a SEL holds a few thousand at most, so a first read of a
// full one takes a few sweeps and no report is swamped.
constexpr std::size_t kMaxSelPerReading = 256;
constexpr std::chrono::seconds kFirstBackoff{1};
constexpr std::chrono::seconds kMaxBackoff{300};

// prometheus-community/ipmi_exporter v1.6.1's names and HELP texts, verbatim (collector.go,
// collector_ipmi.go, collector_chassis.go, collector_dcmi.go, collector_sel.go). FreeIPMI gives
// readings as doubles with the SDR's resolution; milli-units keep every real SDR's steps exact.
Family up_family() {
  return {"ipmi_up", "'1' if a scrape of the IPMI device was successful, '0' otherwise.",
          MetricType::gauge, {1, 0}, ""};
}
Family value_family(SensorKind kind) {
  switch (kind) {
    case SensorKind::temperature:
      return {"ipmi_temperature_celsius", "Temperature reading in degree Celsius.",
              MetricType::gauge, {1, -3}, "°C"};
    case SensorKind::fan_rpm:
      return {"ipmi_fan_speed_rpm", "Fan speed in rotations per minute.", MetricType::gauge,
              {1, -3}, "RPM"};
    case SensorKind::fan_ratio:
      // FreeIPMI says percent; the exporter multiplies by 0.01: {1, -5} of milli-percent.
      return {"ipmi_fan_speed_ratio", "Fan speed as a proportion of the maximum speed.",
              MetricType::gauge, {1, -5}, ""};
    case SensorKind::voltage:
      return {"ipmi_voltage_volts", "Voltage reading in Volts.", MetricType::gauge, {1, -3}, "V"};
    case SensorKind::current:
      return {"ipmi_current_amperes", "Current reading in Amperes.", MetricType::gauge, {1, -3},
              "A"};
    case SensorKind::power:
      return {"ipmi_power_watts", "Power reading in Watts.", MetricType::gauge, {1, -3}, "W"};
    case SensorKind::generic:
      break;
  }
  return {"ipmi_sensor_value", "Generic data read from an IPMI sensor of unknown type, relying on labels for context.",
          MetricType::gauge, {1, -3}, ""};
}
Family state_family(SensorKind kind) {
  switch (kind) {
    case SensorKind::temperature:
      return {"ipmi_temperature_state",
              "Reported state of a temperature sensor (0=nominal, 1=warning, 2=critical).",
              MetricType::gauge, {1, 0}, ""};
    case SensorKind::fan_rpm:
    case SensorKind::fan_ratio:
      return {"ipmi_fan_speed_state",
              "Reported state of a fan speed sensor (0=nominal, 1=warning, 2=critical).",
              MetricType::gauge, {1, 0}, ""};
    case SensorKind::voltage:
      return {"ipmi_voltage_state",
              "Reported state of a voltage sensor (0=nominal, 1=warning, 2=critical).",
              MetricType::gauge, {1, 0}, ""};
    case SensorKind::current:
      return {"ipmi_current_state",
              "Reported state of a current sensor (0=nominal, 1=warning, 2=critical).",
              MetricType::gauge, {1, 0}, ""};
    case SensorKind::power:
      return {"ipmi_power_state",
              "Reported state of a power sensor (0=nominal, 1=warning, 2=critical).",
              MetricType::gauge, {1, 0}, ""};
    case SensorKind::generic:
      break;
  }
  return {"ipmi_sensor_state",
          "Indicates the severity of the state reported by an IPMI sensor (0=nominal, 1=warning, 2=critical).",
          MetricType::gauge, {1, 0}, ""};
}
// Ours: the SDR's thresholds of a threshold sensor, in the unit of its reading (ipmi_exporter
// has none), so that a technician sees how near a limit a reading is (gridnodectl sensors).
Family threshold_family() {
  return {"gridnode_ipmi_sensor_threshold",
          "A BMC sensor's threshold from its SDR, in the unit of its reading (threshold: "
          "lower_non_recoverable, lower_critical, lower_non_critical, upper_non_critical, "
          "upper_critical, upper_non_recoverable).",
          MetricType::gauge, {1, -3}, ""};
}
constexpr std::array<std::string_view, 6> kThresholdNames = {
    "lower_non_recoverable", "lower_critical", "lower_non_critical",
    "upper_non_critical",    "upper_critical", "upper_non_recoverable"};

std::uint8_t threshold_mask(const SensorReading& s) {
  std::uint8_t m = 0;
  for (std::size_t i = 0; i < 6; ++i) {
    if (s.thresholds[i]) {
      m |= static_cast<std::uint8_t>(1u << i);
    }
  }
  return m;
}

Family chassis_family() {
  return {"ipmi_chassis_power_state", "Current power state (1=on, 0=off).", MetricType::gauge,
          {1, 0}, ""};
}
Family dcmi_family() {
  return {"ipmi_dcmi_power_consumption_watts", "Current power consumption in Watts.",
          MetricType::gauge, {1, 0}, "W"};
}
Family sel_count_family() {
  return {"ipmi_sel_logs_count", "Current number of log entries in the SEL.", MetricType::gauge,
          {1, 0}, ""};
}
Family sel_free_family() {
  return {"ipmi_sel_free_space_bytes", "Current free space remaining for new SEL entries.",
          MetricType::gauge, {1, 0}, "B"};
}

// Rounded to the nearest (half away from zero) without libm's llround: the agent links no libm.
std::int64_t rounded(double v) {
  return static_cast<std::int64_t>(v < 0 ? v - 0.5 : v + 0.5);
}
std::int64_t milli(double v) { return rounded(v * 1000.0); }

std::uint8_t severity_of(SensorState s) {
  switch (s) {
    case SensorState::critical:
      return 3;
    case SensorState::warning:
      return 4;
    default:
      return 5;
  }
}

std::string_view state_text(SensorState s) {
  switch (s) {
    case SensorState::nominal:
      return "nominal";
    case SensorState::warning:
      return "warning";
    case SensorState::critical:
      return "critical";
    case SensorState::unknown:
      break;
  }
  return "unknown";
}

// IPMI timestamps below 0x20000000 count seconds since the BMC's initialisation, not 1970
// (IPMI 2.0 §37.1): ipmi_sim's sel_add stamps them so.
std::string time_text(std::uint32_t ts) {
  if (ts < 0x20000000u) {
    return "post-init+" + std::to_string(ts) + "s";
  }
  std::time_t t = static_cast<std::time_t>(ts);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

DeviceEvent sel_event(const std::string& bmc, const SelEntry& e) {
  DeviceEvent d;
  d.severity = severity_of(e.state);
  std::string what = e.sensor.empty() ? e.sensor_type : e.sensor + " (" + e.sensor_type + ")";
  d.message = "SEL " + std::to_string(e.record_id) + ": " + what + ": " + e.event;
  if (!e.direction.empty() && e.direction != "assertion") {
    d.message += " (" + e.direction + ")";
  }
  d.fields = {{"bmc", bmc},
              {"direction", e.direction},
              {"event", e.event},
              {"record_id", std::to_string(e.record_id)},
              {"sensor", e.sensor},
              {"sensor_type", e.sensor_type},
              {"state", std::string(state_text(e.state))},
              {"time", time_text(e.timestamp)},
              {"timestamp", std::to_string(e.timestamp)}};
  return d;
}

// What a catalog is made of: which series exist, in order. Compared with the new reading
// without allocating, so that an unchanged BMC keeps its catalog.
struct SensorKey {
  std::uint32_t record_id = 0;
  std::string name;
  std::string type;
  SensorKind kind = SensorKind::generic;
  bool has_value = false;
  bool has_state = false;
  std::uint8_t thresholds = 0;  // threshold_mask()
};

struct Shape {
  std::vector<SensorKey> sensors;
  bool sensors_ok = false;
  bool chassis_ok = false;
  bool dcmi_supported = false;
  bool dcmi_ok = false;
  bool sel_ok = false;

  bool matches(const BmcReading& r) const {
    if (r.sensors_ok != sensors_ok || r.chassis_ok != chassis_ok ||
        r.dcmi_supported != dcmi_supported || r.dcmi_ok != dcmi_ok || r.sel_ok != sel_ok ||
        r.sensors.size() != sensors.size()) {
      return false;
    }
    for (std::size_t i = 0; i < sensors.size(); ++i) {
      const SensorKey& k = sensors[i];
      const SensorReading& s = r.sensors[i];
      if (k.record_id != s.record_id || k.kind != s.kind || k.name != s.name ||
          k.type != s.type || k.has_value != s.has_value ||
          k.has_state != (s.state != SensorState::unknown) ||
          k.thresholds != threshold_mask(s)) {
        return false;
      }
    }
    return true;
  }
};

// Where the state lives: the position file, and FreeIPMI's SDR cache beside it.
platform::Result<std::string> ensure_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return platform::fail_errno(errno, "mkdir " + path);
  }
  return path;
}

platform::Result<std::string> state_dir_of(const std::string& configured) {
  if (!configured.empty()) {
    return ensure_dir(configured);
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/gridnode-ipmi-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return platform::fail_errno(errno, "mkdtemp " + tmpl);
  }
  return tmpl;
}

// The worker's side: one reading in flight at a time, its result left here for a sweep.
struct Exchange {
  std::mutex mu;
  bool ready = false;
  BmcReading reading;
};

class IpmiDriver final : public Driver {
 public:
  explicit IpmiDriver(IpmiOptions options) : options_(std::move(options)) {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    // In-band without the kernel's device is the ordinary "no BMC here" (a VM, a desktop):
    // absent, and nothing made on disk for it.
    bool no_device = options_.interface == IpmiInterface::inband && !options_.bmc &&
                     ::access(options_.device.c_str(), F_OK) != 0;
    if (no_device || (bmc_ && !bmc_->present())) {
      return platform::fail(std::errc::no_such_file_or_directory,
                            options_.device + ": no IPMI device (no BMC, or ipmi_si/ipmi_devintf not loaded)");
    }
    if (!bmc_) {
      auto made = make_bmc();
      if (!made) {
        return tl::unexpected(made.error());
      }
    }
    Clock::time_point now = Clock::now();
    if (!started_) {
      started_ = true;
      submit(now);
      (void)worker_.wait_until(now + options_.first_wait);
      now = Clock::now();
    }
    if (!worker_.busy()) {
      take();
    }
    if (!worker_.busy() && now >= next_due_) {
      submit(now);
    } else if (worker_.busy() && now - submitted_ > reading_bound()) {
      // FreeIPMI bounds its own calls by the session timeout; a reading far past that is stuck
      // (an in-band driver that does not return): the worker is not asked again until it does.
      if (!failure_ || failure_->code != std::errc::timed_out) {
        failure_ = platform::Error{std::make_error_code(std::errc::timed_out),
                                   "BMC " + bmc_->id() + ": reading not back after " +
                                       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - submitted_).count()) +
                                       " s"};
        complain_down();
      }
    }
    hand_over_events(out);
    if (failure_) {
      return tl::unexpected(*failure_);
    }
    if (!catalog_) {
      return {};  // no reading yet: nothing to say (the sampler calls that absent)
    }
    out.catalog = catalog_;
    out.readings.insert(out.readings.end(), values_.begin(), values_.end());
    out.errors += part_errors_;
    return {};
  }

 private:
  platform::Result<void> make_bmc() {
    auto dir = state_dir_of(options_.state_dir);
    if (!dir) {
      return tl::unexpected(dir.error());
    }
    state_dir_ = *dir;
    auto cache = ensure_dir(state_dir_ + "/ipmi-sdr-cache");
    if (!cache) {
      return tl::unexpected(cache.error());
    }
    if (options_.bmc) {
      bmc_ = options_.bmc;
    } else {
      auto made = ipmi::make_freeipmi_bmc(options_, *cache);
      if (!made) {
        return tl::unexpected(made.error());
      }
      bmc_ = std::move(*made);
    }
    load_position();
    return {};
  }

  void load_position() {
    std::string path = state_dir_ + "/" + std::string(kPositionFile);
    std::string text;
    auto r = platform::read_file(path, text, 4096);
    if (!r) {
      if (r.error().code != std::errc::no_such_file_or_directory) {
        platform::log(Level::warning, kComponent,
                      LogLine("SEL position unreadable, reading the whole SEL")
                          .kv("path", path)
                          .kv("err", r.error().message()));
      }
      return;
    }
    auto p = ipmi::parse_sel_position(text);
    if (!p) {
      platform::log(Level::warning, kComponent,
                    LogLine("SEL position invalid, reading the whole SEL")
                        .kv("path", path)
                        .kv("err", p.error().message()));
      return;
    }
    if (p->bmc != bmc_->id()) {
      platform::log(Level::notice, kComponent,
                    LogLine("SEL position is another BMC's, reading the whole SEL")
                        .kv("path", path)
                        .kv("was", p->bmc)
                        .kv("bmc", bmc_->id()));
      return;
    }
    position_ = *p;
  }

  void save_position() {
    std::string path = state_dir_ + "/" + std::string(kPositionFile);
    auto r = platform::write_file_atomic(path, ipmi::format_sel_position(position_), 0600);
    if (!r) {
      if (position_complaint_.complain()) {
        platform::log(Level::warning, kComponent,
                      LogLine("SEL position not saved: entries may be reported again after a restart")
                          .kv("path", path)
                          .kv("err", r.error().message()));
      }
    } else if (position_complaint_.release()) {
      platform::log(Level::info, kComponent, LogLine("SEL position saved again").kv("path", path));
    }
  }

  std::chrono::nanoseconds reading_bound() const {
    return options_.timeout * 4 + std::chrono::seconds(2);
  }

  void submit(Clock::time_point now) {
    submitted_ = now;
    auto bmc = bmc_;
    auto exchange = exchange_;
    SelPosition from = position_;
    worker_.submit([bmc, exchange, from] {
      BmcReading r;
      bmc->read(from, kMaxSelPerReading, r);
      std::lock_guard lock(exchange->mu);
      exchange->reading = std::move(r);
      exchange->ready = true;
    });
  }

  void take() {
    {
      std::lock_guard lock(exchange_->mu);
      if (!exchange_->ready) {
        return;
      }
      std::swap(taken_, exchange_->reading);
      exchange_->ready = false;
    }
    apply(taken_);
  }

  void apply(BmcReading& r) {
    if (r.failure) {
      failure_ = std::move(r.failure);
      next_due_ = Clock::now() + backoff_;
      backoff_ = std::min<std::chrono::nanoseconds>(backoff_ * 2, kMaxBackoff);
      complain_down();
      return;
    }
    if (down_.release()) {
      platform::log(Level::notice, kComponent, LogLine("BMC answering again").kv("bmc", bmc_->id()));
    }
    failure_.reset();
    backoff_ = kFirstBackoff;
    next_due_ = submitted_ + options_.interval;
    log_problems(r);
    part_errors_ = r.problems.size();
    if (!catalog_ || !shape_.matches(r)) {
      rebuild(r);
    }
    fill(r);
    collect_sel(r);
  }

  void complain_down() {
    if (down_.complain()) {
      platform::log(Level::warning, kComponent,
                    LogLine("BMC not answering, retrying with backoff")
                        .kv("bmc", bmc_->id())
                        .kv("err", failure_->message()));
    }
  }

  void log_problems(const BmcReading& r) {
    if (r.problems == problems_ && r.notes == notes_) {
      return;
    }
    for (const auto& p : r.problems) {
      if (std::find(problems_.begin(), problems_.end(), p) == problems_.end()) {
        platform::log(Level::warning, kComponent,
                      LogLine("part of the BMC reading failed").kv("bmc", bmc_->id()).kv("err", p));
      }
    }
    if (r.problems.empty() && !problems_.empty()) {
      platform::log(Level::info, kComponent, LogLine("BMC reading complete again").kv("bmc", bmc_->id()));
    }
    problems_ = r.problems;
    if (r.notes != notes_) {
      for (const auto& n : r.notes) {
        platform::log(Level::info, kComponent, LogLine(n).kv("bmc", bmc_->id()));
      }
      notes_ = r.notes;
    }
  }

  void rebuild(const BmcReading& r) {
    auto c = std::make_shared<Catalog>();
    std::uint32_t up = c->add_family(up_family());
    slots_ = {};
    slots_.up_ipmi = c->add_series(up, {{"collector", "ipmi"}});
    slots_.up_chassis = c->add_series(up, {{"collector", "chassis"}});
    slots_.up_sel = c->add_series(up, {{"collector", "sel"}});
    if (r.dcmi_supported) {
      slots_.up_dcmi = c->add_series(up, {{"collector", "dcmi"}});
    }
    shape_ = Shape{};
    shape_.sensors_ok = r.sensors_ok;
    shape_.chassis_ok = r.chassis_ok;
    shape_.dcmi_supported = r.dcmi_supported;
    shape_.dcmi_ok = r.dcmi_ok;
    shape_.sel_ok = r.sel_ok;
    sensor_slots_.clear();
    for (const auto& s : r.sensors) {
      SensorSlot slot;
      std::string id = std::to_string(s.record_id);
      Labels labels = {{"id", id}, {"name", s.name}};
      if (s.kind == SensorKind::generic) {
        labels.emplace_back("type", s.type);
      }
      if (s.has_value) {
        slot.value = c->add_series(c->add_family(value_family(s.kind)), labels);
      }
      if (s.state != SensorState::unknown) {
        slot.state = c->add_series(c->add_family(state_family(s.kind)), labels);
      }
      for (std::size_t i = 0; i < 6; ++i) {
        if (s.thresholds[i]) {
          Labels t = {{"id", id}, {"name", s.name}, {"threshold", std::string(kThresholdNames[i])}};
          slot.thresholds[i] = c->add_series(c->add_family(threshold_family()), std::move(t));
        }
      }
      sensor_slots_.push_back(slot);
      shape_.sensors.push_back({s.record_id, s.name, s.type, s.kind, s.has_value,
                                s.state != SensorState::unknown, threshold_mask(s)});
    }
    if (r.chassis_ok) {
      slots_.chassis = c->add_series(c->add_family(chassis_family()), {});
    }
    if (r.dcmi_ok) {
      slots_.dcmi = c->add_series(c->add_family(dcmi_family()), {});
    }
    if (r.sel_ok) {
      slots_.sel_count = c->add_series(c->add_family(sel_count_family()), {});
      slots_.sel_free = c->add_series(c->add_family(sel_free_family()), {});
    }
    if (!catalog_ || !(*catalog_ == *c)) {
      catalog_ = std::move(c);
    }
    values_.reserve(catalog_->series.size());
  }

  void fill(const BmcReading& r) {
    values_.clear();
    auto put = [this](std::optional<std::uint32_t> series, Value v) {
      if (series) {
        values_.push_back({*series, v});
      }
    };
    put(slots_.up_ipmi, Value::of_unsigned(r.sensors_ok ? 1 : 0));
    put(slots_.up_chassis, Value::of_unsigned(r.chassis_ok ? 1 : 0));
    put(slots_.up_sel, Value::of_unsigned(r.sel_ok ? 1 : 0));
    put(slots_.up_dcmi, Value::of_unsigned(r.dcmi_ok ? 1 : 0));
    for (std::size_t i = 0; i < r.sensors.size() && i < sensor_slots_.size(); ++i) {
      const SensorReading& s = r.sensors[i];
      const SensorSlot& slot = sensor_slots_[i];
      if (s.has_value) {
        put(slot.value, Value::of_signed(milli(s.value)));
      }
      if (s.state != SensorState::unknown) {
        put(slot.state, Value::of_unsigned(static_cast<std::uint64_t>(s.state)));
      }
      for (std::size_t t = 0; t < 6; ++t) {
        if (s.thresholds[t]) {
          put(slot.thresholds[t], Value::of_signed(milli(*s.thresholds[t])));
        }
      }
    }
    put(slots_.chassis, Value::of_unsigned(r.power_on ? 1 : 0));
    put(slots_.dcmi, Value::of_signed(rounded(r.dcmi_watts)));
    put(slots_.sel_count, Value::of_unsigned(r.sel_entries));
    put(slots_.sel_free, Value::of_unsigned(r.sel_free_bytes));
  }

  // The reading's SEL news waits here until a sweep hands it over; the position moves (and is
  // saved) only then, so what the agent never received is read again after a restart.
  void collect_sel(BmcReading& r) {
    if (!r.sel_ok) {
      return;
    }
    const std::string& bmc = bmc_->id();
    if (r.sel_change == SelChange::cleared) {
      platform::log(Level::notice, kComponent,
                    LogLine("SEL cleared, reading it from its first entry").kv("bmc", bmc));
      pending_.push_back({4, "SEL of BMC " + bmc + " was cleared",
                          {{"bmc", bmc}, {"change", "cleared"}, {"entries", std::to_string(r.sel_entries)}}});
    } else if (r.sel_change == SelChange::lost) {
      platform::log(Level::warning, kComponent,
                    LogLine("SEL position lost without a clear (wrapped, or entries deleted): "
                            "reading it from its first entry")
                        .kv("bmc", bmc)
                        .kv("record_id", position_.record_id));
      pending_.push_back({4, "SEL of BMC " + bmc + " wrapped or lost entries: read again from its first entry",
                          {{"bmc", bmc}, {"change", "lost"}, {"entries", std::to_string(r.sel_entries)}}});
    }
    for (const auto& e : r.sel_new) {
      pending_.push_back(sel_event(bmc, e));
    }
    if (!(r.sel_position == position_)) {
      position_ = r.sel_position;
      position_dirty_ = true;
    }
  }

  void hand_over_events(Sweep& out) {
    if (!pending_.empty()) {
      for (auto& e : pending_) {
        out.events.push_back(std::move(e));
      }
      pending_.clear();
    }
    if (position_dirty_) {
      save_position();
      position_dirty_ = false;
    }
  }

  struct SensorSlot {
    std::optional<std::uint32_t> value;
    std::optional<std::uint32_t> state;
    std::optional<std::uint32_t> thresholds[6];
  };
  struct Slots {
    std::optional<std::uint32_t> up_ipmi, up_chassis, up_sel, up_dcmi;
    std::optional<std::uint32_t> chassis, dcmi, sel_count, sel_free;
  };

  IpmiOptions options_;
  std::shared_ptr<ipmi::Bmc> bmc_;
  std::string state_dir_;
  CallWorker worker_;
  std::shared_ptr<Exchange> exchange_ = std::make_shared<Exchange>();
  bool started_ = false;
  Clock::time_point submitted_{};
  Clock::time_point next_due_{};
  std::chrono::nanoseconds backoff_ = kFirstBackoff;
  std::optional<platform::Error> failure_;
  platform::Complaint down_;
  platform::Complaint position_complaint_;
  std::vector<std::string> problems_;
  std::vector<std::string> notes_;
  std::uint64_t part_errors_ = 0;

  BmcReading taken_;
  Shape shape_;
  Slots slots_;
  std::vector<SensorSlot> sensor_slots_;
  std::shared_ptr<const Catalog> catalog_;
  std::vector<Reading> values_;

  SelPosition position_;
  bool position_dirty_ = false;
  std::vector<DeviceEvent> pending_;
};

}  // namespace

std::unique_ptr<Driver> make_ipmi_driver(IpmiOptions options) {
  return std::make_unique<IpmiDriver>(std::move(options));
}

platform::Result<std::string> read_ipmi_password_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return platform::fail_errno(errno, path);
  }
  if (!S_ISREG(st.st_mode)) {
    return platform::fail(std::errc::permission_denied, path + ": not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return platform::fail(std::errc::permission_denied,
                          path + ": mode " + mode +
                              " lets group or others read the BMC password (chmod 600 it)");
  }
  std::string text;
  auto r = platform::read_file(path, text, 4096);
  if (!r) {
    return tl::unexpected(r.error());
  }
  if (text.size() >= 2 && text.compare(text.size() - 2, 2, "\r\n") == 0) {
    text.resize(text.size() - 2);
  } else if (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  if (text.empty()) {
    return platform::fail(std::errc::invalid_argument, path + ": empty password");
  }
  return text;
}

}  // namespace gridnode::drivers
