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
#include "ascend/dcmi_library.hpp"
#include "gridnode/drivers/ascend.hpp"
#include "gridnode/platform/log.hpp"

namespace gridnode::drivers {
namespace {

using namespace ascend;  // NOLINT: the DCMI ABI's names read best unqualified here

constexpr std::string_view kComponent = "ascend";

// The per-chip values, in catalog order.
enum Metric : std::uint8_t {
  kUtilization,
  kHbmUsed,
  kHbmTotal,
  kUsedMemory,
  kTotalMemory,
  kTemperature,
  kPower,
  kVoltage,
  kHealth,
  kErrorCode,
  kNetwork,
  kAicoreFreq,
  kMetricCount
};

// npu-exporter's names and HELP texts (MindCluster component/npu-exporter, collector/), with the
// units it documents: memory in MB as DCMI gives it, power in W (DCMI's 0.1 W, kept exact with
// scale 10^-1), voltage in V (DCMI's 0.01 V, scale 10^-2).
Family metric_family(Metric m) {
  using T = MetricType;
  switch (m) {
    case kUtilization:
      return {"npu_chip_info_utilization", "the ai core utilization", T::gauge, {}, "%"};
    case kHbmUsed:
      return {"npu_chip_info_hbm_used_memory", "the npu hbm used memory", T::gauge, {}, "MB"};
    case kHbmTotal:
      return {"npu_chip_info_hbm_total_memory", "the npu hbm total memory", T::gauge, {}, "MB"};
    case kUsedMemory:
      return {"npu_chip_info_used_memory", "the npu used memory", T::gauge, {}, "MB"};
    case kTotalMemory:
      return {"npu_chip_info_total_memory", "the npu total memory", T::gauge, {}, "MB"};
    case kTemperature:
      return {"npu_chip_info_temperature", "the npu temperature", T::gauge, {}, "°C"};
    case kPower:
      return {"npu_chip_info_power", "the npu power", T::gauge, {1, -1}, "W"};
    case kVoltage:
      return {"npu_chip_info_voltage", "the npu voltage", T::gauge, {1, -2}, "V"};
    case kHealth:
      return {"npu_chip_info_health_status", "the npu health status", T::gauge, {}, ""};
    case kErrorCode:
      return {"npu_chip_info_error_code", "the npu error code", T::gauge, {}, ""};
    case kNetwork:
      return {"npu_chip_info_network_status", "the npu network health status", T::gauge, {}, ""};
    case kAicoreFreq:
      return {"npu_chip_info_aicore_current_freq",
              "the npu ai core current frequency, unit is 'MHz'",
              T::gauge,
              {},
              "MHz"};
    case kMetricCount:
      break;
  }
  return {};
}

Family up_family() {
  return {"gridnode_npu_up",
          "Whether the NPU answers DCMI (0: fell off the bus, or a call to it hung).",
          MetricType::gauge,
          {},
          ""};
}
Family degraded_family() {
  return {"gridnode_npu_degraded",
          "Whether a DCMI call to the NPU is still running past its deadline.",
          MetricType::gauge,
          {},
          ""};
}
Family count_family() {
  return {"machine_npu_nums", "Amount of npu installed on the machine.", MetricType::gauge, {}, ""};
}

// What one chip's worker read in one sweep. Written by the worker only, read by the sweep only
// after the worker is done with it.
struct ChipRead {
  bool lost = false;
  std::uint64_t errors = 0;
  std::string first_error;
  std::array<std::optional<std::int64_t>, kMetricCount> values{};
  std::optional<unsigned> health;  // DCMI's: 0 normal, 1 minor, 2 major, 3 critical alarm
  bool codes_ok = false;
  std::array<unsigned, kMaxErrorCodes> codes{};
  unsigned code_count = 0;
  std::uint64_t free_memory_bytes = 0;
  bool processes_ok = false;
  std::array<dcmi_proc_mem_info, kMaxProcesses> processes{};
  int process_count = 0;
};

// Records a DCMI answer: true on success. DEVICE_NOT_EXIST ends the chip's read (it fell off
// the bus); NOT_SUPPORT means the chip lacks the field (absent, not an error, as collectd's
// NOT_SUPPORTED rule); anything else skips the field and counts.
bool answered(ChipRead& r, int rc, const char* call) {
  if (rc == DCMI_OK) {
    return true;
  }
  if (rc == DCMI_ERR_CODE_DEVICE_NOT_EXIST) {
    r.lost = true;
  } else if (rc != DCMI_ERR_CODE_NOT_SUPPORT) {
    if (r.errors++ == 0) {
      r.first_error = dcmi_error(rc, call).message();
    }
  }
  return false;
}

constexpr int kMiB = 20;

// Reads every field of one chip. Runs on the chip's worker thread; may block inside DCMI.
void read_chip(const Api& a, int card, int dev, ChipRead& r) {
  auto set = [&](Metric m, std::int64_t v) { r.values[m] = v; };
  unsigned u = 0;
  int i = 0;
  if (a.get_health && answered(r, a.get_health(card, dev, &u), "dcmi_get_device_health")) {
    r.health = u;
    set(kHealth, u == 0 ? 1 : 0);  // npu-exporter: 1 healthy (DCMI's 0), 0 otherwise
  }
  if (r.lost) return;
  if (a.get_errorcodes) {
    int count = 0;
    if (answered(r, a.get_errorcodes(card, dev, &count, r.codes.data(), kMaxErrorCodes),
                 "dcmi_get_device_errorcode_v2")) {
      r.codes_ok = true;
      r.code_count = static_cast<unsigned>(std::clamp<int>(count, 0, kMaxErrorCodes));
      set(kErrorCode, r.code_count > 0 ? r.codes[0] : 0);
    }
  }
  if (r.lost) return;
  if (a.get_temperature &&
      answered(r, a.get_temperature(card, dev, &i), "dcmi_get_device_temperature")) {
    set(kTemperature, i);
  }
  if (r.lost) return;
  if (a.get_power && answered(r, a.get_power(card, dev, &i), "dcmi_get_device_power_info")) {
    set(kPower, i);  // 0.1 W
  }
  if (r.lost) return;
  if (a.get_voltage && answered(r, a.get_voltage(card, dev, &u), "dcmi_get_device_voltage")) {
    set(kVoltage, u);  // 0.01 V
  }
  if (r.lost) return;
  if (a.get_utilization &&
      answered(r, a.get_utilization(card, dev, DCMI_UTILIZATION_RATE_AICORE, &u),
               "dcmi_get_device_utilization_rate(AICORE)")) {
    set(kUtilization, u);
  }
  if (r.lost) return;
  if (a.get_frequency && answered(r, a.get_frequency(card, dev, DCMI_FREQ_AICORE_CURRENT_, &u),
                                  "dcmi_get_device_frequency(AICORE_CURRENT)")) {
    set(kAicoreFreq, u);
  }
  if (r.lost) return;
  bool hbm = false;
  if (a.get_hbm) {
    dcmi_hbm_info info{};
    if (answered(r, a.get_hbm(card, dev, &info), "dcmi_get_device_hbm_info")) {
      hbm = true;
      set(kHbmTotal, static_cast<std::int64_t>(info.memory_size));
      set(kHbmUsed, static_cast<std::int64_t>(info.memory_usage));
      if (info.memory_size >= info.memory_usage) {
        r.free_memory_bytes = (info.memory_size - info.memory_usage) << kMiB;
      }
    }
  }
  if (r.lost) return;
  if (a.get_memory) {
    dcmi_get_memory_info_stru info{};
    if (answered(r, a.get_memory(card, dev, &info), "dcmi_get_device_memory_info_v3")) {
      set(kTotalMemory, static_cast<std::int64_t>(info.memory_size));
      // npu-exporter's used memory: total minus available (free + free huge pages).
      if (info.memory_size >= info.memory_available) {
        set(kUsedMemory, static_cast<std::int64_t>(info.memory_size - info.memory_available));
      }
      if (!hbm) {
        // A chip without HBM (310P) computes out of its DDR.
        r.free_memory_bytes = info.memory_available << kMiB;
      }
    }
  }
  if (r.lost) return;
  if (a.get_network_health) {
    dcmi_rdfx_detect_result net = DCMI_RDFX_DETECT_OK;
    if (answered(r, a.get_network_health(card, dev, &net), "dcmi_get_device_network_health")) {
      set(kNetwork, net == DCMI_RDFX_DETECT_OK ? 1 : 0);
    }
  }
  if (r.lost) return;
  if (a.get_processes) {
    int count = kMaxProcesses;
    if (answered(r, a.get_processes(card, dev, r.processes.data(), &count),
                 "dcmi_get_device_resource_info")) {
      r.processes_ok = true;
      r.process_count = std::clamp(count, 0, kMaxProcesses);
    }
  }
}

// What one chip is, learnt at discovery.
struct Chip {
  int card = 0, device = 0;
  unsigned id = 0;  // the physical id (npu-exporter's {id}), else the logic id
  std::string model, vdie, pcie;
  Labels labels;                   // id, model_name, vdie_id, pcie_bus_info (npu-exporter's order)
  std::uint32_t first_series = 0;  // kMetricCount metrics, then up, degraded
  accelerators::DeviceSlot slot;
  std::shared_ptr<ChipRead> read = std::make_shared<ChipRead>();
  std::optional<unsigned> last_health;
  std::vector<unsigned> last_codes;  // the codes reported last sweep, sorted
  platform::Complaint complaint;
};

// What the control worker finds at discovery.
struct Discovery {
  int init = DCMI_OK;
  int list_rc = DCMI_OK;
  struct Found {
    int rc = DCMI_OK;  // dcmi_get_device_logic_id's
    int card = 0, device = 0;
    unsigned id = 0;
    std::string model, vdie, pcie;
  };
  std::vector<Found> chips;
};

// The chips the cards hold now: a change in their number means rediscovery.
struct Poll {
  int rc = DCMI_OK;
  unsigned count = 0;
};

int count_chips(const Api& a, std::vector<std::pair<int, int>>* chips) {
  std::array<int, MAX_CARD_NUM> cards{};
  int card_num = 0;
  int rc = a.get_card_list(&card_num, cards.data(), MAX_CARD_NUM);
  if (rc != DCMI_OK) {
    return rc;
  }
  for (int c = 0; c < std::clamp(card_num, 0, MAX_CARD_NUM); ++c) {
    int n = 0;
    if (a.get_device_num(cards[c], &n) != DCMI_OK) {
      continue;  // a card that cannot say how many chips it holds shows none
    }
    for (int d = 0; d < n; ++d) {
      chips->emplace_back(cards[c], d);
    }
  }
  return DCMI_OK;
}

void discover_on_worker(const Api& a, bool need_init, Discovery& d) {
  if (need_init) {
    d.init = a.init();
    if (d.init != DCMI_OK) {
      return;
    }
  }
  std::vector<std::pair<int, int>> chips;
  d.list_rc = count_chips(a, &chips);
  if (d.list_rc != DCMI_OK) {
    return;
  }
  for (auto [card, dev] : chips) {
    Discovery::Found& f = d.chips.emplace_back();
    f.card = card;
    f.device = dev;
    int logic = 0;
    f.rc = a.get_logic_id(&logic, card, dev);
    if (f.rc != DCMI_OK) {
      continue;
    }
    f.id = static_cast<unsigned>(logic);
    unsigned phy = 0;
    if (a.get_phy_id && a.get_phy_id(static_cast<unsigned>(logic), &phy) == DCMI_OK) {
      f.id = phy;
    }
    dcmi_chip_info chip{};
    if (a.get_chip_info && a.get_chip_info(card, dev, &chip) == DCMI_OK) {
      // npu-exporter's GetNpuName: name-type-version ("910B3-Ascend-V1").
      auto name = accelerators::from_c_buffer(chip.chip_name, sizeof chip.chip_name);
      auto type = accelerators::from_c_buffer(chip.chip_type, sizeof chip.chip_type);
      auto ver = accelerators::from_c_buffer(chip.chip_ver, sizeof chip.chip_ver);
      if (!name.empty() || !type.empty() || !ver.empty()) {
        f.model = name + "-" + type + "-" + ver;
      }
    }
    dcmi_die_id die{};
    if (a.get_die && a.get_die(card, dev, VDIE, &die) == DCMI_OK) {
      // npu-exporter's vdie_id: each word in upper-case hex, 8 digits, joined by '-'.
      std::array<char, DIE_ID_COUNT * 9 + 1> buf{};
      int at = 0;
      for (int w = 0; w < DIE_ID_COUNT; ++w) {
        at += std::snprintf(buf.data() + at, buf.size() - at, w == 0 ? "%08X" : "-%08X",
                            die.soc_die[w]);
      }
      f.vdie = buf.data();
    }
    dcmi_pcie_info_all pcie{};
    if (a.get_pcie_info && a.get_pcie_info(card, dev, &pcie) == DCMI_OK) {
      std::array<char, 32> buf{};
      std::snprintf(buf.data(), buf.size(), "%04X:%02X:%02X.%X", static_cast<unsigned>(pcie.domain),
                    pcie.bdf_busid, pcie.bdf_deviceid, pcie.bdf_funcid);
      f.pcie = buf.data();
    }
  }
}

std::string code_text(unsigned code) {
  std::array<char, 16> buf{};
  std::snprintf(buf.data(), buf.size(), "0x%08X", code);
  return buf.data();
}

const char* health_word(unsigned h) {
  switch (h) {
    case 0:
      return "normal";
    case 1:
      return "minor alarm";
    case 2:
      return "major alarm";
    case 3:
      return "critical alarm";
    default:
      return "unknown";
  }
}

class AscendDriver final : public accelerators::VendorDriver<Library> {
 public:
  explicit AscendDriver(AscendOptions options)
      : VendorDriver("DCMI", "NPU"), options_(std::move(options)) {}

  // DCMI has no shutdown call: the workers go (a hung one detached) and the library with them.
  ~AscendDriver() override = default;

  std::string_view name() const override { return kComponent; }

 private:
  const std::string& library_path() const override { return options_.library; }
  bool no_device() const override { return chips_.empty(); }
  void read_devices(Sweep& out) override { read_chips(out); }

  platform::Result<void> discover(Sweep& out, bool need_init) override {
    auto d = std::make_shared<Discovery>();
    auto lib = lib_;
    auto ran =
        control_->call([lib, d, need_init] { discover_on_worker(lib->api(), need_init, *d); },
                       need_init ? "dcmi_init" : "dcmi_get_card_num_list", options_.call_timeout);
    if (!ran) {
      return ran;
    }
    if (d->init != DCMI_OK) {
      return tl::unexpected(dcmi_error(d->init, "dcmi_init (" + lib_->path() + ")" +
                                                    (d->init == DCMI_ERR_CODE_OPER_NOT_PERMITTED
                                                         ? ": this user may not open /dev/davinci*"
                                                         : "")));
    }
    initialized_ = true;
    if (d->list_rc != DCMI_OK) {
      return tl::unexpected(dcmi_error(d->list_rc, "dcmi_get_card_num_list"));
    }
    build_chips(*d, out);
    return {};
  }

  void build_chips(const Discovery& d, Sweep& out) {
    std::vector<Chip> chips(d.chips.size());
    for (std::size_t i = 0; i < d.chips.size(); ++i) {
      const auto& f = d.chips[i];
      Chip& c = chips[i];
      c.card = f.card;
      c.device = f.device;
      c.id = f.rc == DCMI_OK ? f.id : static_cast<unsigned>(i);
      c.model = f.model;
      c.vdie = f.vdie;
      c.pcie = f.pcie;
      c.labels = {{"id", std::to_string(c.id)},
                  {"model_name", c.model},
                  {"vdie_id", c.vdie},
                  {"pcie_bus_info", c.pcie}};
      if (f.rc != DCMI_OK) {
        c.slot.lost = true;
        if (f.rc == DCMI_ERR_CODE_DEVICE_NOT_EXIST) {
          out.events.push_back(lost_event(c));
        } else {
          platform::log(platform::Level::warning, kComponent,
                        platform::LogLine("NPU not usable")
                            .kv("card", f.card)
                            .kv("device", f.device)
                            .kv("err", dcmi_error(f.rc, "dcmi_get_device_logic_id").message()));
        }
      }
    }
    chips_ = std::move(chips);
    base_catalog_ = build_base_catalog();
    processes_.reset();
    catalog_ = base_catalog_;
  }

  std::shared_ptr<const Catalog> build_base_catalog() {
    Catalog c;
    count_series_ = c.add_series(c.add_family(count_family()), {});
    std::array<std::uint32_t, kMetricCount> fam{};
    for (int m = 0; m < kMetricCount; ++m) {
      fam[m] = c.add_family(metric_family(static_cast<Metric>(m)));
    }
    auto up = c.add_family(up_family());
    auto degraded = c.add_family(degraded_family());
    for (auto& chip : chips_) {
      chip.first_series = static_cast<std::uint32_t>(c.series.size());
      for (int m = 0; m < kMetricCount; ++m) {
        c.add_series(fam[m], chip.labels);
      }
      c.add_series(up, chip.labels);
      c.add_series(degraded, chip.labels);
    }
    summary_series_ = accelerators::add_summary(c, "huawei");
    process_family_ = c.add_family(accelerators::process_family());
    return std::make_shared<const Catalog>(std::move(c));
  }

  platform::Result<void> poll(Sweep& out) override {
    auto p = std::make_shared<Poll>();
    auto lib = lib_;
    auto ran = control_->call(
        [lib, p] {
          std::vector<std::pair<int, int>> chips;
          p->rc = count_chips(lib->api(), &chips);
          p->count = static_cast<unsigned>(chips.size());
        },
        "dcmi_get_card_num_list", options_.call_timeout);
    if (!ran) {
      return ran;
    }
    if (p->rc != DCMI_OK) {
      return tl::unexpected(dcmi_error(p->rc, "dcmi_get_card_num_list"));
    }
    if (p->count != chips_.size()) {
      platform::log(platform::Level::notice, kComponent,
                    platform::LogLine("NPU count changed, discovering again")
                        .kv("before", static_cast<std::int64_t>(chips_.size()))
                        .kv("now", p->count));
      return discover(out, false);
    }
    return {};
  }

  static std::string who(const Chip& c) {
    return "NPU " + std::to_string(c.id) + " (" + (c.model.empty() ? c.vdie : c.model) + ")";
  }
  static Labels event_fields(const Chip& c) {
    return {{"id", std::to_string(c.id)}, {"pcie_bus_info", c.pcie}, {"vdie_id", c.vdie}};
  }
  static DeviceEvent lost_event(const Chip& c) {
    return accelerators::lost_event(kComponent, who(c), "DCMI_ERR_CODE_DEVICE_NOT_EXIST",
                                    event_fields(c));
  }

  // A health change DCMI reports (dcmi_get_device_health): 0 normal, then minor, major and
  // critical alarms, as syslog's info, warning, err and crit.
  void health_change(Chip& c, unsigned now, Sweep& out) {
    if (c.last_health == now || (!c.last_health && now == 0)) {
      c.last_health = now;
      return;  // no change; a healthy first sweep is no news
    }
    DeviceEvent ev;
    ev.severity = now == 0 ? 6 : now == 1 ? 4 : now == 2 ? 3 : 2;
    ev.message = who(c) + ": health " + std::to_string(now) + " (" + health_word(now) + ")" +
                 (c.last_health ? ", was " + std::to_string(*c.last_health) + " (" +
                                      health_word(*c.last_health) + ")"
                                : std::string());
    ev.fields = event_fields(c);
    ev.fields.emplace_back("health", std::to_string(now));
    std::sort(ev.fields.begin(), ev.fields.end());
    platform::log(now == 0 ? platform::Level::notice : platform::Level::warning, kComponent,
                  platform::LogLine(ev.message));
    out.events.push_back(std::move(ev));
    c.last_health = now;
  }

  // Each error code DCMI reports that it did not report last sweep is an event (XID's like).
  void error_codes(Chip& c, const ChipRead& r, Sweep& out) {
    std::vector<unsigned> now(r.codes.begin(), r.codes.begin() + r.code_count);
    std::sort(now.begin(), now.end());
    now.erase(std::unique(now.begin(), now.end()), now.end());
    if (now == c.last_codes) {
      return;
    }
    for (unsigned code : now) {
      if (std::binary_search(c.last_codes.begin(), c.last_codes.end(), code)) {
        continue;
      }
      DeviceEvent ev;
      ev.severity = 4;
      ev.message = who(c) + ": error code " + code_text(code);
      ev.fields = event_fields(c);
      ev.fields.emplace_back("error_code", code_text(code));
      std::sort(ev.fields.begin(), ev.fields.end());
      platform::log(platform::Level::warning, kComponent, platform::LogLine(ev.message));
      out.events.push_back(std::move(ev));
    }
    c.last_codes = std::move(now);
  }

  void read_chips(Sweep& out) {
    // Every idle chip is asked at once, each on its own thread.
    accelerators::read_all(
        chips_, [](Chip& c) -> accelerators::DeviceSlot& { return c.slot; },
        [&](Chip& c) {
          auto lib = lib_;
          c.read = std::make_shared<ChipRead>();
          auto read = c.read;
          int card = c.card, dev = c.device;
          c.slot.worker->submit(
              [lib, read, card, dev] { read_chip(lib->api(), card, dev, *read); });
        },
        options_.call_timeout);
    out.catalog = catalog_;
    out.readings.push_back(
        {count_series_, Value::of_signed(static_cast<std::int64_t>(chips_.size()))});
    std::vector<Labels> keys;
    std::vector<std::uint64_t> process_memory;
    accelerators::Summary summary;
    summary.total = static_cast<std::int64_t>(chips_.size());
    for (auto& c : chips_) {
      auto settled = accelerators::settle(c.slot, c.slot.fresh && c.read->lost);
      accelerators::push_health_change(
          out, settled.change, [&] { return lost_event(c); }, kComponent, [&] { return who(c); },
          "a DCMI call", options_.call_timeout, [&] { return event_fields(c); });
      push(out, c.first_series + kMetricCount, settled.answering ? 1 : 0);
      push(out, c.first_series + kMetricCount + 1, c.slot.degraded ? 1 : 0);
      if (!settled.answering) {
        continue;  // lost or hung: no values, not even the last ones
      }
      const ChipRead& r = *c.read;
      for (int m = 0; m < kMetricCount; ++m) {
        if (r.values[m]) {
          push(out, c.first_series + m, *r.values[m]);
        }
      }
      if (r.health) {
        health_change(c, *r.health, out);
      }
      if (r.codes_ok) {
        error_codes(c, r, out);
      }
      out.errors += r.errors;
      if (r.errors > 0 && c.complaint.complain()) {
        platform::log(platform::Level::debug, kComponent,
                      platform::LogLine("reading skipped").kv("id", c.id).kv("err", r.first_error));
      } else if (r.errors == 0) {
        c.complaint.release();
      }
      bool in_use =
          (r.processes_ok && r.process_count > 0) || r.values[kUtilization].value_or(0) > 0;
      (in_use ? summary.busy : summary.idle) += 1;
      summary.free_memory_bytes += r.free_memory_bytes;
      // DCMI reports no power limit: no headroom is known for an Ascend chip.
      for (int p = 0; p < r.process_count; ++p) {
        const auto& proc = r.processes[p];
        if (proc.proc_id <= 0) {
          continue;
        }
        auto pid = static_cast<std::uint32_t>(proc.proc_id);
        auto owner = accelerators::process_owner(options_.roots, pid);
        keys.push_back({{"gpu", std::to_string(c.id)},
                        {"UUID", c.vdie},
                        {"pid", std::to_string(pid)},
                        {"uid", std::move(owner.uid)},
                        {"cgroup", std::move(owner.cgroup)}});
        process_memory.push_back(proc.proc_mem_usage);
      }
    }
    accelerators::push_summary(out, summary_series_, summary);
    processes_.publish(keys, process_memory, ~std::uint64_t{0}, base_catalog_, process_family_,
                       catalog_, out);
  }

  static void push(Sweep& out, std::uint32_t series, std::int64_t v) {
    out.readings.push_back({series, Value::of_signed(v)});
  }

  AscendOptions options_;
  std::vector<Chip> chips_;
  std::shared_ptr<const Catalog> base_catalog_;
  std::shared_ptr<const Catalog> catalog_;
  std::uint32_t count_series_ = 0;
  std::uint32_t summary_series_ = 0;
  std::uint32_t process_family_ = 0;
  accelerators::ProcessSeries processes_;
};

}  // namespace

std::unique_ptr<Driver> make_ascend_driver(AscendOptions options) {
  return std::make_unique<AscendDriver>(std::move(options));
}

}  // namespace gridnode::drivers
