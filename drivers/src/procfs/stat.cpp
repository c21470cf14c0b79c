// /proc/stat: node_exporter's cpu collector (node_cpu_seconds_total, node_cpu_guest_seconds_total)
// and its stat collector (boot time, context switches, forks, interrupts, procs).

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "procfs/table.hpp"

namespace gridnode::drivers::procfs {
namespace {

// USER_HZ is 100 on every Linux architecture node_exporter runs on (procfs's userHZ).
constexpr Scale kTicks{1, -2};
// CONFIG_NR_CPUS is at most 8192; a larger CPU number is corrupt input, not a CPU.
constexpr std::uint32_t kMaxCpus = 8192;

constexpr FamilySpec kCpuSeconds{"node_cpu_seconds_total", "Seconds the CPUs spent in each mode.",
                                 MetricType::counter, kTicks, "s"};
constexpr FamilySpec kCpuGuest{"node_cpu_guest_seconds_total",
                               "Seconds the CPUs spent in guests (VMs) for each mode.",
                               MetricType::counter, kTicks, "s"};
// /proc/stat's columns in order; the last two are guest time, which the kernel also counts in
// user and nice, so node_exporter exports them as a family of their own.
constexpr std::array<std::string_view, kCpuModes> kCpuModeLabels{
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "user", "nice"};
constexpr std::size_t kCpuGuestFirst = 8;

constexpr FamilySpec kBootTime{
    "node_boot_time_seconds", "Node boot time, in unixtime.", MetricType::gauge, {}, "s"};
constexpr FamilySpec kContextSwitches{"node_context_switches_total",
                                      "Total number of context switches.",
                                      MetricType::counter,
                                      {},
                                      ""};
constexpr FamilySpec kForks{
    "node_forks_total", "Total number of forks.", MetricType::counter, {}, ""};
constexpr FamilySpec kIntr{
    "node_intr_total", "Total number of interrupts serviced.", MetricType::counter, {}, ""};
constexpr FamilySpec kProcsRunning{
    "node_procs_running", "Number of processes in runnable state.", MetricType::gauge, {}, ""};
constexpr FamilySpec kProcsBlocked{"node_procs_blocked",
                                   "Number of processes blocked waiting for I/O to complete.",
                                   MetricType::gauge,
                                   {},
                                   ""};

const FamilySpec* stat_scalar_family(StatLine::Kind kind) {
  switch (kind) {
    case StatLine::Kind::btime:
      return &kBootTime;
    case StatLine::Kind::ctxt:
      return &kContextSwitches;
    case StatLine::Kind::processes:
      return &kForks;
    case StatLine::Kind::intr:
      return &kIntr;
    case StatLine::Kind::procs_running:
      return &kProcsRunning;
    case StatLine::Kind::procs_blocked:
      return &kProcsBlocked;
    default:
      return nullptr;
  }
}

class StatTable final : public RowTable<StatTable, StatLine> {
 public:
  explicit StatTable(const platform::Roots& roots) : RowTable(roots.proc("stat"), false) {}

  StatLine parse(std::string_view text) const { return parse_stat_line(text); }
  bool skip(const StatLine& line) const { return line.kind == StatLine::Kind::other; }
  std::string_view key(const StatLine& line) const { return line.key; }

  std::uint8_t shape(const StatLine& line) const {
    if (line.kind == StatLine::Kind::bad_cpu) {
      return kBad;
    }
    if (line.kind == StatLine::Kind::cpu) {
      // Every kernel since 2.6.33 writes ten columns; fewer is a truncated row.
      return line.cpu < kMaxCpus && line.count == kCpuModes ? kOk : kBad;
    }
    return line.count >= 1 ? kOk : kBad;
  }

  void begin_plan(bool /*present*/) {
    offline_cpu_series_.clear();
    online_.clear();
    seen_scalar_ = {};
  }

  void add_series(Catalog& c, const StatLine& line, RowPlan& row) {
    if (row.shape == kOk && line.kind == StatLine::Kind::cpu) {
      row.cpu = line.cpu;
      if (online_.size() <= line.cpu) {
        online_.resize(line.cpu + 1, false);
      }
      if (!online_[line.cpu]) {
        online_[line.cpu] = true;
        row.first_series = add_cpu_series(c, line.cpu);
      }
    } else if (row.shape == kOk && line.kind != StatLine::Kind::bad_cpu) {
      auto k = static_cast<std::size_t>(line.kind);
      if (!seen_scalar_[k]) {
        seen_scalar_[k] = true;
        row.first_series = c.add_series(add_family(c, *stat_scalar_family(line.kind)), {});
      }
    }
  }

  void end_plan(Catalog& c) {
    for (std::uint32_t cpu = 0; cpu < online_.size(); ++cpu) {
      if (!online_[cpu]) {
        offline_cpu_series_.push_back(add_cpu_series(c, cpu));
      }
    }
    // node_exporter forgets its clamping state when the number of CPU slots changes.
    if (cpu_state_.size() != online_.size()) {
      cpu_state_.assign(online_.size(), {});
    }
  }

  void push(Sweep& out, Emitter& emitter, RowPlan& row, const StatLine& line) {
    if (line.kind != StatLine::Kind::cpu) {
      emitter.push_value(out, path(), row.key, row.first_series, line.values[0]);
      return;
    }
    // A CPU row is all or nothing: node_exporter's clamping compares its modes together.
    std::array<std::uint64_t, kCpuModes> now{};
    bool ok = true;
    for (std::size_t i = 0; i < kCpuModes && ok; ++i) {
      auto v = platform::parse_uint64(line.values[i]);
      ok = v.has_value();
      now[i] = ok ? *v : 0;
    }
    if (!ok) {
      bad_row(out, row.key, row.complaint, "not a number");
      return;
    }
    log_recovered(row.complaint, path(), row.key);
    auto& state = cpu_state_[row.cpu];
    clamp_cpu_counters(state, now);
    for (std::size_t i = 0; i < kCpuModes; ++i) {
      out.readings.push_back(Reading{row.first_series + static_cast<std::uint32_t>(i),
                                     Value::of_unsigned(state[i])});
    }
  }

  // node_exporter 1.5.0 keeps CPUs in a slice indexed by number, so an offline CPU below the
  // highest online one is reported with every mode at zero.
  void after_rows(Sweep& out) {
    for (std::uint32_t first : offline_cpu_series_) {
      for (std::uint32_t i = 0; i < kCpuModes; ++i) {
        out.readings.push_back(Reading{first + i, Value::of_unsigned(0)});
      }
    }
  }

 private:
  // The ten series of one CPU, consecutive: eight node_cpu_seconds_total modes, then the two
  // node_cpu_guest_seconds_total ones, in /proc/stat's column order.
  static std::uint32_t add_cpu_series(Catalog& c, std::uint32_t cpu) {
    std::uint32_t seconds = add_family(c, kCpuSeconds);
    std::uint32_t guest = add_family(c, kCpuGuest);
    std::string id = std::to_string(cpu);
    std::uint32_t first = kNoSeries;
    for (std::size_t i = 0; i < kCpuModes; ++i) {
      std::uint32_t s = c.add_series(i < kCpuGuestFirst ? seconds : guest,
                                     {{"cpu", id}, {"mode", std::string(kCpuModeLabels[i])}});
      first = std::min(first, s);
    }
    return first;
  }

  std::vector<std::array<std::uint64_t, kCpuModes>> cpu_state_;  // by CPU number
  std::vector<std::uint32_t> offline_cpu_series_;
  // Discovery's scratch: CPUs seen, scalar rows seen.
  std::vector<bool> online_;
  std::array<bool, 16> seen_scalar_{};
};

}  // namespace

std::unique_ptr<Table> make_stat_table(const platform::Roots& roots) {
  return std::make_unique<StatTable>(roots);
}

}  // namespace gridnode::drivers::procfs
