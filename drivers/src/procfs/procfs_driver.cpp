#include <algorithm>
#include <array>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "gridnode/drivers/procfs.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "procfs/procfs_parse.hpp"
#include "rediscovery.hpp"

// Host state from procfs under node_exporter 1.5.0's names: the cpu, stat, meminfo, loadavg,
// netdev (its /proc/net/dev path) and diskstats collectors, plus gridnode_boot_info and
// gridnode_uptime_seconds.
//
// Unlike sysfs, where every reading is a file of its own, these are tables: one read per file
// per sweep, parsed in place. The catalog follows the rows (CPUs, meminfo fields, interfaces,
// disks); each sweep checks, while it parses, that every table still has the same rows in the
// same order with the same shape, and only rebuilds the catalog when one does not.

namespace gridnode::drivers {
namespace {

using platform::Complaint;
using platform::Level;
using platform::LogLine;
using procfs::DiskstatsLine;
using procfs::MeminfoLine;
using procfs::NetdevLine;
using procfs::StatLine;

constexpr std::string_view kComponent = "procfs";
constexpr std::uint32_t kNoSeries = std::numeric_limits<std::uint32_t>::max();
// node_exporter reads /proc/stat lines of up to 1 MiB (the intr line of a big host is long).
constexpr std::size_t kMaxTableBytes = 4u << 20;
constexpr std::size_t kFirstBufferBytes = 16u << 10;
// CONFIG_NR_CPUS is at most 8192; a larger CPU number is corrupt input, not a CPU.
constexpr std::uint32_t kMaxCpus = 8192;

// What a row turned into, as far as its own text tells: rows with the same key and shape in the
// same order as at discovery map onto the same series.
enum Shape : std::uint8_t {
  kBad = 0,        // malformed: counted as an error every sweep
  kOk = 1,         // for diskstats, the number of counters (11..17) instead
  kIgnored = 255,  // filtered out by node_exporter's default device filters
};

// ---------------------------------------------------------------------------------------------
// Families, spelled as node_exporter 1.5.0 spells them.

struct FamilySpec {
  std::string_view name;
  std::string_view help;
  MetricType type;
  Scale scale;
  std::string_view unit;
};

std::uint32_t add_family(Catalog& c, const FamilySpec& f) {
  return c.add_family(
      Family{std::string(f.name), std::string(f.help), f.type, f.scale, std::string(f.unit)});
}

// USER_HZ is 100 on every Linux architecture node_exporter runs on (procfs's userHZ).
constexpr Scale kTicks{1, -2};
constexpr Scale kMillis{1, -3};
constexpr Scale kSectors{512, 0};
constexpr Scale kKibibytes{1024, 0};
constexpr Scale kHundredths{1, -2};

constexpr FamilySpec kCpuSeconds{"node_cpu_seconds_total", "Seconds the CPUs spent in each mode.",
                                 MetricType::counter, kTicks, "s"};
constexpr FamilySpec kCpuGuest{"node_cpu_guest_seconds_total",
                               "Seconds the CPUs spent in guests (VMs) for each mode.",
                               MetricType::counter, kTicks, "s"};
// /proc/stat's columns in order; the last two are guest time, which the kernel also counts in
// user and nice, so node_exporter exports them as a family of their own.
constexpr std::array<std::string_view, procfs::kCpuModes> kCpuModeLabels{
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

constexpr std::array<FamilySpec, 3> kLoad{{
    {"node_load1", "1m load average.", MetricType::gauge, kHundredths, ""},
    {"node_load5", "5m load average.", MetricType::gauge, kHundredths, ""},
    {"node_load15", "15m load average.", MetricType::gauge, kHundredths, ""},
}};

// Ours, not node_exporter's.
constexpr FamilySpec kUptime{"gridnode_uptime_seconds",
                             "Seconds since the kernel booted (procfs uptime).", MetricType::gauge,
                             kHundredths, "s"};
constexpr FamilySpec kBootInfo{
    "gridnode_boot_info",
    "The kernel's boot id (procfs sys/kernel/random/boot_id); constant 1.",
    MetricType::gauge,
    {},
    ""};

// /proc/net/dev's columns under the names node_exporter's netdev collector gives them on its
// /proc/net/dev path (after its legacy() renaming); each becomes node_network_<name>_total.
constexpr std::array<std::string_view, procfs::kNetdevColumns> kNetdevNames{
    "receive_bytes",  "receive_packets",  "receive_errs",       "receive_drop",
    "receive_fifo",   "receive_frame",    "receive_compressed", "receive_multicast",
    "transmit_bytes", "transmit_packets", "transmit_errs",      "transmit_drop",
    "transmit_fifo",  "transmit_colls",   "transmit_carrier",   "transmit_compressed"};

// /proc/diskstats's counters in order (Documentation/admin-guide/iostats.rst).
constexpr std::array<FamilySpec, procfs::kDiskColumns> kDisk{{
    {"node_disk_reads_completed_total",
     "The total number of reads completed successfully.",
     MetricType::counter,
     {},
     ""},
    {"node_disk_reads_merged_total",
     "The total number of reads merged.",
     MetricType::counter,
     {},
     ""},
    {"node_disk_read_bytes_total", "The total number of bytes read successfully.",
     MetricType::counter, kSectors, "B"},
    {"node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.",
     MetricType::counter, kMillis, "s"},
    {"node_disk_writes_completed_total",
     "The total number of writes completed successfully.",
     MetricType::counter,
     {},
     ""},
    {"node_disk_writes_merged_total", "The number of writes merged.", MetricType::counter, {}, ""},
    {"node_disk_written_bytes_total", "The total number of bytes written successfully.",
     MetricType::counter, kSectors, "B"},
    {"node_disk_write_time_seconds_total",
     "This is the total number of seconds spent by all writes.", MetricType::counter, kMillis, "s"},
    {"node_disk_io_now", "The number of I/Os currently in progress.", MetricType::gauge, {}, ""},
    {"node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", MetricType::counter,
     kMillis, "s"},
    {"node_disk_io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.",
     MetricType::counter, kMillis, "s"},
    {"node_disk_discards_completed_total",
     "The total number of discards completed successfully.",
     MetricType::counter,
     {},
     ""},
    {"node_disk_discards_merged_total",
     "The total number of discards merged.",
     MetricType::counter,
     {},
     ""},
    // Sectors, not bytes: node_exporter 1.5.0 applies no factor here.
    {"node_disk_discarded_sectors_total",
     "The total number of sectors discarded successfully.",
     MetricType::counter,
     {},
     ""},
    {"node_disk_discard_time_seconds_total",
     "This is the total number of seconds spent by all discards.", MetricType::counter, kMillis,
     "s"},
    {"node_disk_flush_requests_total",
     "The total number of flush requests completed successfully",
     MetricType::counter,
     {},
     ""},
    {"node_disk_flush_requests_time_seconds_total",
     "This is the total number of seconds spent by all flush requests.", MetricType::counter,
     kMillis, "s"},
}};

// ---------------------------------------------------------------------------------------------
// Reading the tables.

// One procfs table, read whole once per sweep into a buffer that keeps its capacity.
class TableFile {
 public:
  enum class State : std::uint8_t { ok, absent, failed };

  // `records` marks seq_files that print one record per device (net/dev, diskstats): a single
  // read(2) of those stops at the end of the kernel's page-sized buffer, so they are read to
  // EOF with read_file(). The others (stat, meminfo, loadavg, uptime) are generated whole by a
  // single show(), so one pread() of a kept-open file returns all of it when the buffer is big
  // enough; the buffer grows (once) when it is not.
  TableFile(std::string path, bool records) : path_(std::move(path)), records_(records) {
    if (!records_) {
      file_ = platform::KernelFile(path_);
      buf_.resize(kFirstBufferBytes);
    }
  }

  const std::string& path() const { return path_; }
  State state() const { return state_; }
  std::string_view text() const { return text_; }
  const platform::Error& error() const { return error_; }
  Complaint& complaint() { return complaint_; }

  void read() {
    platform::Result<std::string_view> got = records_ ? read_records() : read_single();
    if (got) {
      state_ = State::ok;
      text_ = *got;
      return;
    }
    text_ = {};
    error_ = std::move(got.error());
    state_ = error_.code == std::errc::no_such_file_or_directory ? State::absent : State::failed;
  }

 private:
  platform::Result<std::string_view> read_records() {
    auto r = platform::read_file(path_, str_, kMaxTableBytes);
    if (!r) {
      return tl::unexpected(std::move(r.error()));
    }
    return std::string_view(str_);
  }

  platform::Result<std::string_view> read_single() {
    for (;;) {
      auto r = file_.read(buf_);
      if (r || r.error().code != std::errc::result_out_of_range || buf_.size() >= kMaxTableBytes) {
        return r;
      }
      buf_.resize(std::min(buf_.size() * 2, kMaxTableBytes));
    }
  }

  std::string path_;
  bool records_;
  platform::KernelFile file_;
  std::vector<char> buf_;
  std::string str_;
  State state_ = State::absent;
  std::string_view text_;
  platform::Error error_;
  Complaint complaint_;
};

// ---------------------------------------------------------------------------------------------
// The plan: what discovery made of each table's rows.

struct RowPlan {
  std::string key;  // the row's name as the kernel wrote it
  std::uint8_t shape = kBad;
  std::uint32_t first_series = kNoSeries;  // kNoSeries: malformed, duplicate or ignored
  std::uint32_t cpu = 0;                   // /proc/stat cpu rows: the CPU number
  Complaint complaint;                     // the row being malformed
};

struct TablePlan {
  bool present = false;
  std::vector<RowPlan> rows;
};

// The shape checks compare each row the sweep parses with the plan's next row.
class RowCursor {
 public:
  explicit RowCursor(std::vector<RowPlan>& rows) : rows_(rows) {}
  // The plan's row for a parsed row, or nullptr when the rows differ from discovery's.
  RowPlan* match(std::string_view key, std::uint8_t shape) {
    if (next_ >= rows_.size()) {
      return nullptr;
    }
    RowPlan& row = rows_[next_];
    if (row.shape != shape || row.key != key) {
      return nullptr;
    }
    ++next_;
    return &row;
  }
  bool at_end() const { return next_ == rows_.size(); }

 private:
  std::vector<RowPlan>& rows_;
  std::size_t next_ = 0;
};

std::uint8_t cpu_shape(const StatLine& line) {
  if (line.kind == StatLine::Kind::bad_cpu) {
    return kBad;
  }
  // Every kernel since 2.6.33 writes ten columns; fewer is a truncated row.
  return line.cpu < kMaxCpus && line.count == procfs::kCpuModes ? kOk : kBad;
}

bool is_stat_row(const StatLine& line) { return line.kind != StatLine::Kind::other; }

std::uint8_t stat_shape(const StatLine& line) {
  if (line.kind == StatLine::Kind::cpu || line.kind == StatLine::Kind::bad_cpu) {
    return cpu_shape(line);
  }
  return line.count >= 1 ? kOk : kBad;
}

std::uint8_t meminfo_shape(const MeminfoLine& line) {
  switch (line.kind) {
    case MeminfoLine::Kind::value:
      return 1;
    case MeminfoLine::Kind::value_kb:
      return 2;
    default:
      return kBad;
  }
}

std::uint8_t netdev_shape(const NetdevLine& line) {
  if (!line.name.empty() && procfs::is_ignored_netdev(line.name)) {
    return kIgnored;
  }
  return line.kind == NetdevLine::Kind::device ? kOk : kBad;
}

std::uint8_t disk_shape(const DiskstatsLine& line) {
  if (!line.name.empty() && procfs::is_ignored_disk(line.name)) {
    return kIgnored;
  }
  if (line.kind != DiskstatsLine::Kind::device) {
    return kBad;
  }
  return static_cast<std::uint8_t>(line.count);
}

// ---------------------------------------------------------------------------------------------

class ProcfsDriver final : public Driver {
 public:
  explicit ProcfsDriver(ProcfsOptions options)
      : roots_(std::move(options.roots)),
        stat_(roots_.proc("stat"), false),
        meminfo_(roots_.proc("meminfo"), false),
        loadavg_(roots_.proc("loadavg"), false),
        uptime_(roots_.proc("uptime"), false),
        netdev_(roots_.proc("net/dev"), true),
        diskstats_(roots_.proc("diskstats"), true),
        boot_id_path_(roots_.proc("sys/kernel/random/boot_id")) {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    bool any_present = false;
    for (TableFile* t : tables()) {
      t->read();
      any_present = any_present || t->state() != TableFile::State::absent;
    }
    if (!any_present) {
      return platform::fail(std::errc::no_such_file_or_directory,
                            "procfs: no stat, meminfo, loadavg, uptime, net/dev or diskstats "
                            "under " +
                                roots_.procfs);
    }

    bool discover = !catalog_ || rediscovery_.due();
    if (!discover) {
      std::size_t readings_mark = out.readings.size();
      std::uint64_t errors_mark = out.errors;
      if (!emit(out)) {
        // A row appeared, vanished or changed shape: forget this pass and start again from
        // a catalog built from the same text.
        out.readings.resize(readings_mark);
        out.errors = errors_mark;
        discover = true;
      }
    }
    if (discover) {
      rediscover(out);
      // Cannot find a difference: the plan was just made from this very text.
      emit(out);
    }
    for (TableFile* t : tables()) {
      if (t->state() == TableFile::State::failed) {
        ++out.errors;
        if (t->complaint().complain()) {
          log_skipped(t->path(), "", "", t->error().message());
        }
      } else {
        recovered(t->complaint(), t->path(), "");
      }
    }
    out.catalog = catalog_;
    return {};
  }

 private:
  std::array<TableFile*, 6> tables() {
    return {&stat_, &meminfo_, &loadavg_, &uptime_, &netdev_, &diskstats_};
  }

  // ---- logging ------------------------------------------------------------------------------

  // A problem is logged when it starts and when it clears, not on every sweep; the message is
  // only built then.
  static void log_skipped(const std::string& path, std::string_view row, std::string_view field,
                          std::string_view err) {
    LogLine line("reading skipped");
    line.kv("path", path);
    if (!row.empty()) {
      line.kv("row", row);
    }
    if (!field.empty()) {
      line.kv("field", field);
    }
    platform::log(Level::debug, kComponent, line.kv("err", err));
  }

  static void recovered(Complaint& c, const std::string& path, std::string_view row) {
    if (c.release()) {
      LogLine line("reading recovered");
      line.kv("path", path);
      if (!row.empty()) {
        line.kv("row", row);
      }
      platform::log(Level::debug, kComponent, line);
    }
  }

  void value_skipped(Sweep& out, const TableFile& table, std::string_view row, std::uint32_t series,
                     const platform::Error& err) {
    ++out.errors;
    if (series_complaints_[series].complain()) {
      log_skipped(table.path(), row, catalog_->family_of(series).name, err.message());
    }
  }

  // Parses one counter and pushes it to `series`; a bad one is skipped and counted.
  void push_value(Sweep& out, const TableFile& table, std::string_view row, std::uint32_t series,
                  std::string_view text) {
    auto v = platform::parse_uint64(text);
    if (!v) {
      value_skipped(out, table, row, series, v.error());
      return;
    }
    recovered(series_complaints_[series], table.path(), row);
    out.readings.push_back(Reading{series, Value::of_unsigned(*v)});
  }

  void push_hundredths(Sweep& out, const TableFile& table, std::uint32_t series,
                       std::string_view text) {
    auto v = procfs::parse_hundredths(text);
    if (!v) {
      value_skipped(out, table, "", series, v.error());
      return;
    }
    recovered(series_complaints_[series], table.path(), "");
    out.readings.push_back(Reading{series, Value::of_unsigned(*v)});
  }

  void bad_row(Sweep& out, const TableFile& table, RowPlan& row, std::string_view why) {
    ++out.errors;
    if (row.complaint.complain()) {
      log_skipped(table.path(), row.key, "", why);
    }
  }

  // ---- steady state ---------------------------------------------------------------------------

  // Pushes this sweep's readings. Returns false as soon as a table's rows differ from the plan.
  bool emit(Sweep& out) {
    return emit_stat(out) && emit_meminfo(out) && emit_loadavg(out) && emit_uptime(out) &&
           emit_netdev(out) && emit_diskstats(out) && emit_boot(out);
  }

  // A table whose read failed (other than being absent) keeps its plan; its error is counted
  // once in sweep(). One that appeared or vanished needs a new catalog.
  static bool presence_matches(const TableFile& t, const TablePlan& plan, bool& readable) {
    readable = t.state() == TableFile::State::ok;
    if (t.state() == TableFile::State::failed) {
      return true;
    }
    return readable == plan.present;
  }

  bool emit_stat(Sweep& out) {
    bool readable = false;
    if (!presence_matches(stat_, stat_plan_, readable)) {
      return false;
    }
    if (!readable) {
      return true;
    }
    RowCursor cursor(stat_plan_.rows);
    std::string_view rest = stat_.text();
    std::string_view text;
    while (procfs::next_line(rest, text)) {
      StatLine line = procfs::parse_stat_line(text);
      if (!is_stat_row(line)) {
        continue;
      }
      RowPlan* row = cursor.match(line.key, stat_shape(line));
      if (row == nullptr) {
        return false;
      }
      if (row->first_series == kNoSeries) {
        bad_row(out, stat_, *row, row->shape == kBad ? "malformed row" : "duplicate row");
        continue;
      }
      if (line.kind != StatLine::Kind::cpu) {
        push_value(out, stat_, row->key, row->first_series, line.values[0]);
        continue;
      }
      // A CPU row is all or nothing: node_exporter's clamping compares its modes together.
      std::array<std::uint64_t, procfs::kCpuModes> now{};
      bool ok = true;
      for (std::size_t i = 0; i < procfs::kCpuModes && ok; ++i) {
        auto v = platform::parse_uint64(line.values[i]);
        ok = v.has_value();
        now[i] = ok ? *v : 0;
      }
      if (!ok) {
        bad_row(out, stat_, *row, "not a number");
        continue;
      }
      recovered(row->complaint, stat_.path(), row->key);
      auto& state = cpu_state_[row->cpu];
      procfs::clamp_cpu_counters(state, now);
      for (std::size_t i = 0; i < procfs::kCpuModes; ++i) {
        out.readings.push_back(Reading{row->first_series + static_cast<std::uint32_t>(i),
                                       Value::of_unsigned(state[i])});
      }
    }
    if (!cursor.at_end()) {
      return false;
    }
    // node_exporter 1.5.0 keeps CPUs in a slice indexed by number, so an offline CPU below the
    // highest online one is reported with every mode at zero.
    for (std::uint32_t first : offline_cpu_series_) {
      for (std::uint32_t i = 0; i < procfs::kCpuModes; ++i) {
        out.readings.push_back(Reading{first + i, Value::of_unsigned(0)});
      }
    }
    return true;
  }

  bool emit_meminfo(Sweep& out) {
    bool readable = false;
    if (!presence_matches(meminfo_, meminfo_plan_, readable)) {
      return false;
    }
    if (!readable) {
      return true;
    }
    RowCursor cursor(meminfo_plan_.rows);
    std::string_view rest = meminfo_.text();
    std::string_view text;
    while (procfs::next_line(rest, text)) {
      MeminfoLine line = procfs::parse_meminfo_line(text);
      if (line.kind == MeminfoLine::Kind::blank) {
        continue;
      }
      RowPlan* row = cursor.match(line.key, meminfo_shape(line));
      if (row == nullptr) {
        return false;
      }
      if (row->first_series == kNoSeries) {
        bad_row(out, meminfo_, *row, row->shape == kBad ? "malformed row" : "unusable key");
        continue;
      }
      push_value(out, meminfo_, row->key, row->first_series, line.value);
    }
    return cursor.at_end();
  }

  bool emit_loadavg(Sweep& out) {
    bool readable = false;
    if (!presence_matches(loadavg_, loadavg_plan_, readable)) {
      return false;
    }
    if (!readable) {
      return true;
    }
    std::string_view rest = loadavg_.text();
    for (std::uint32_t series : load_series_) {
      push_hundredths(out, loadavg_, series, procfs::next_field(rest));
    }
    return true;
  }

  bool emit_uptime(Sweep& out) {
    bool readable = false;
    if (!presence_matches(uptime_, uptime_plan_, readable)) {
      return false;
    }
    if (!readable) {
      return true;
    }
    std::string_view rest = uptime_.text();
    push_hundredths(out, uptime_, uptime_series_, procfs::next_field(rest));
    return true;
  }

  bool emit_netdev(Sweep& out) {
    bool readable = false;
    if (!presence_matches(netdev_, netdev_plan_, readable)) {
      return false;
    }
    if (!readable) {
      return true;
    }
    std::string_view rest = netdev_.text();
    std::string_view text;
    // Two header lines, skipped unread as the procfs library does.
    for (int i = 0; i < 2 && procfs::next_line(rest, text); ++i) {
    }
    return emit_rows(out, netdev_, netdev_plan_, rest, &procfs::parse_netdev_line, &netdev_shape);
  }

  bool emit_diskstats(Sweep& out) {
    bool readable = false;
    if (!presence_matches(diskstats_, diskstats_plan_, readable)) {
      return false;
    }
    if (!readable) {
      return true;
    }
    return emit_rows(out, diskstats_, diskstats_plan_, diskstats_.text(),
                     &procfs::parse_diskstats_line, &disk_shape);
  }

  // The row loop of a per-device table (net/dev, diskstats): each line is parsed, matched with
  // the plan's next row, and its counters pushed. False when the rows no longer match the plan
  // (a device appeared, vanished or changed shape): the caller rediscovers.
  template <class Line>
  bool emit_rows(Sweep& out, const TableFile& table, TablePlan& plan, std::string_view rest,
                 Line (*parse)(std::string_view), std::uint8_t (*shape)(const Line&)) {
    RowCursor cursor(plan.rows);
    std::string_view text;
    while (procfs::next_line(rest, text)) {
      Line line = parse(text);
      if (line.kind == Line::Kind::blank) {
        continue;
      }
      RowPlan* row = cursor.match(line.name, shape(line));
      if (row == nullptr) {
        return false;
      }
      if (row->shape == kIgnored) {
        continue;
      }
      if (row->first_series == kNoSeries) {
        bad_row(out, table, *row, row->shape == kBad ? "malformed row" : "duplicate row");
        continue;
      }
      // A device row holds all its counters: 16 for net/dev, 11, 15 or 17 for diskstats.
      for (std::size_t i = 0; i < line.count; ++i) {
        push_value(out, table, row->key, row->first_series + static_cast<std::uint32_t>(i),
                   line.values[i]);
      }
    }
    return cursor.at_end();
  }

  bool emit_boot(Sweep& out) {
    if (boot_series_ != kNoSeries) {
      out.readings.push_back(Reading{boot_series_, Value::of_unsigned(1)});
    }
    return true;
  }

  // ---- discovery ------------------------------------------------------------------------------

  // Builds the catalog and plan from the text this sweep read, keeping the old catalog pointer
  // when nothing a consumer can see changed. A table whose read failed in this very sweep gets
  // no series until a later sweep reads it (its reappearance triggers discovery again).
  void rediscover(Sweep& out) {
    rediscovery_.done();
    auto next = std::make_shared<Catalog>();
    Catalog& c = *next;

    plan_stat(c);
    plan_meminfo(c);
    plan_fixed(c);
    plan_netdev(c);
    plan_diskstats(c);
    plan_boot(c, out);

    series_complaints_.assign(c.series.size(), Complaint{});
    if (!catalog_ || *catalog_ != c) {
      catalog_ = std::move(next);
    }
  }

  static bool start_plan(const TableFile& t, TablePlan& plan) {
    plan.rows.clear();
    plan.present = t.state() == TableFile::State::ok;
    return plan.present;
  }

  void plan_stat(Catalog& c) {
    offline_cpu_series_.clear();
    std::vector<bool> online;
    if (start_plan(stat_, stat_plan_)) {
      std::array<bool, 16> seen_scalar{};
      std::string_view rest = stat_.text();
      std::string_view text;
      while (procfs::next_line(rest, text)) {
        StatLine line = procfs::parse_stat_line(text);
        if (!is_stat_row(line)) {
          continue;
        }
        RowPlan row;
        row.key = std::string(line.key);
        row.shape = stat_shape(line);
        if (row.shape == kOk && line.kind == StatLine::Kind::cpu) {
          row.cpu = line.cpu;
          if (online.size() <= line.cpu) {
            online.resize(line.cpu + 1, false);
          }
          if (!online[line.cpu]) {
            online[line.cpu] = true;
            row.first_series = add_cpu_series(c, line.cpu);
          }
        } else if (row.shape == kOk && line.kind != StatLine::Kind::bad_cpu) {
          auto k = static_cast<std::size_t>(line.kind);
          if (!seen_scalar[k]) {
            seen_scalar[k] = true;
            row.first_series = c.add_series(add_family(c, *stat_scalar_family(line.kind)), {});
          }
        }
        stat_plan_.rows.push_back(std::move(row));
      }
      for (std::uint32_t cpu = 0; cpu < online.size(); ++cpu) {
        if (!online[cpu]) {
          offline_cpu_series_.push_back(add_cpu_series(c, cpu));
        }
      }
    }
    // node_exporter forgets its clamping state when the number of CPU slots changes.
    if (cpu_state_.size() != online.size()) {
      cpu_state_.assign(online.size(), {});
    }
  }

  // The ten series of one CPU, consecutive: eight node_cpu_seconds_total modes, then the two
  // node_cpu_guest_seconds_total ones, in /proc/stat's column order.
  static std::uint32_t add_cpu_series(Catalog& c, std::uint32_t cpu) {
    std::uint32_t seconds = add_family(c, kCpuSeconds);
    std::uint32_t guest = add_family(c, kCpuGuest);
    std::string id = std::to_string(cpu);
    std::uint32_t first = kNoSeries;
    for (std::size_t i = 0; i < procfs::kCpuModes; ++i) {
      std::uint32_t s = c.add_series(i < kCpuGuestFirst ? seconds : guest,
                                     {{"cpu", id}, {"mode", std::string(kCpuModeLabels[i])}});
      first = std::min(first, s);
    }
    return first;
  }

  void plan_meminfo(Catalog& c) {
    if (!start_plan(meminfo_, meminfo_plan_)) {
      return;
    }
    std::vector<std::string> names;
    std::string_view rest = meminfo_.text();
    std::string_view text;
    while (procfs::next_line(rest, text)) {
      MeminfoLine line = procfs::parse_meminfo_line(text);
      if (line.kind == MeminfoLine::Kind::blank) {
        continue;
      }
      RowPlan row;
      row.key = std::string(line.key);
      row.shape = meminfo_shape(line);
      if (row.shape != kBad) {
        bool kb = line.kind == MeminfoLine::Kind::value_kb;
        std::string name = procfs::meminfo_metric_name(line.key, kb);
        // An empty name cannot be exported; a repeated one would be a duplicate sample.
        if (!name.empty() && std::find(names.begin(), names.end(), name) == names.end()) {
          names.push_back(name);
          std::string field = name.substr(std::string_view("node_memory_").size());
          // node_exporter's meminfo collector calls any field ending in "_total" a counter.
          bool counter = field.size() >= 6 && field.ends_with("_total");
          std::uint32_t f = c.add_family(Family{name, "Memory information field " + field + ".",
                                                counter ? MetricType::counter : MetricType::gauge,
                                                kb ? kKibibytes : Scale{}, kb ? "B" : ""});
          row.first_series = c.add_series(f, {});
        }
      }
      meminfo_plan_.rows.push_back(std::move(row));
    }
  }

  void plan_fixed(Catalog& c) {
    load_series_.fill(kNoSeries);
    if (start_plan(loadavg_, loadavg_plan_)) {
      for (std::size_t i = 0; i < kLoad.size(); ++i) {
        load_series_[i] = c.add_series(add_family(c, kLoad[i]), {});
      }
    }
    uptime_series_ = kNoSeries;
    if (start_plan(uptime_, uptime_plan_)) {
      uptime_series_ = c.add_series(add_family(c, kUptime), {});
    }
  }

  void plan_netdev(Catalog& c) {
    if (!start_plan(netdev_, netdev_plan_)) {
      return;
    }
    // Rows named twice (which the kernel never writes) get no series: the second would be a
    // duplicate sample.
    std::unordered_set<std::string_view> names;
    std::string_view rest = netdev_.text();
    std::string_view text;
    for (int i = 0; i < 2 && procfs::next_line(rest, text); ++i) {
    }
    while (procfs::next_line(rest, text)) {
      NetdevLine line = procfs::parse_netdev_line(text);
      if (line.kind == NetdevLine::Kind::blank) {
        continue;
      }
      RowPlan row;
      row.key = std::string(line.name);
      row.shape = netdev_shape(line);
      if (row.shape == kOk && names.insert(line.name).second) {
        for (std::size_t i = 0; i < procfs::kNetdevColumns; ++i) {
          std::string key(kNetdevNames[i]);
          bool bytes = key.ends_with("_bytes");
          std::uint32_t f = c.add_family(Family{"node_network_" + key + "_total",
                                                "Network device statistic " + key + ".",
                                                MetricType::counter,
                                                {},
                                                bytes ? "B" : ""});
          std::uint32_t s = c.add_series(f, {{"device", row.key}});
          if (i == 0) {
            row.first_series = s;
          }
        }
      }
      netdev_plan_.rows.push_back(std::move(row));
    }
  }

  void plan_diskstats(Catalog& c) {
    if (!start_plan(diskstats_, diskstats_plan_)) {
      return;
    }
    std::unordered_set<std::string_view> names;
    std::string_view rest = diskstats_.text();
    std::string_view text;
    while (procfs::next_line(rest, text)) {
      DiskstatsLine line = procfs::parse_diskstats_line(text);
      if (line.kind == DiskstatsLine::Kind::blank) {
        continue;
      }
      RowPlan row;
      row.key = std::string(line.name);
      row.shape = disk_shape(line);
      if (row.shape != kBad && row.shape != kIgnored && names.insert(line.name).second) {
        // As many of the 17 metrics as the kernel has columns: 11 before Linux 4.18, 15
        // before 5.5 (discards), 17 since (flushes).
        for (std::size_t i = 0; i < line.count; ++i) {
          std::uint32_t s = c.add_series(add_family(c, kDisk[i]), {{"device", row.key}});
          if (i == 0) {
            row.first_series = s;
          }
        }
      }
      diskstats_plan_.rows.push_back(std::move(row));
    }
  }

  void plan_boot(Catalog& c, Sweep& out) {
    boot_series_ = kNoSeries;
    std::array<char, 128> buf;
    auto text = platform::read_small_file(boot_id_path_, buf);
    if (!text) {
      // A kernel without the file has no boot id to report; anything else is a failed read.
      if (text.error().code != std::errc::no_such_file_or_directory) {
        ++out.errors;
        if (boot_complaint_.complain()) {
          log_skipped(boot_id_path_, "", "", text.error().message());
        }
      }
      return;
    }
    std::string_view id = procfs::parse_boot_id(*text);
    if (id.empty()) {
      ++out.errors;
      if (boot_complaint_.complain()) {
        log_skipped(boot_id_path_, "", "", "not a UUID");
      }
      return;
    }
    recovered(boot_complaint_, boot_id_path_, "");
    boot_series_ = c.add_series(add_family(c, kBootInfo), {{"boot_id", std::string(id)}});
  }

  platform::Roots roots_;
  TableFile stat_;
  TableFile meminfo_;
  TableFile loadavg_;
  TableFile uptime_;
  TableFile netdev_;
  TableFile diskstats_;
  std::string boot_id_path_;
  Complaint boot_complaint_;

  std::shared_ptr<const Catalog> catalog_;
  Rediscovery rediscovery_;
  std::vector<Complaint> series_complaints_;  // by series index

  TablePlan stat_plan_;
  std::vector<std::array<std::uint64_t, procfs::kCpuModes>> cpu_state_;  // by CPU number
  std::vector<std::uint32_t> offline_cpu_series_;
  TablePlan meminfo_plan_;
  TablePlan loadavg_plan_;
  std::array<std::uint32_t, 3> load_series_{};
  TablePlan uptime_plan_;
  std::uint32_t uptime_series_ = kNoSeries;
  TablePlan netdev_plan_;
  TablePlan diskstats_plan_;
  std::uint32_t boot_series_ = kNoSeries;
};

}  // namespace

std::unique_ptr<Driver> make_procfs_driver(ProcfsOptions options) {
  return std::make_unique<ProcfsDriver>(std::move(options));
}

}  // namespace gridnode::drivers
