#pragma once

// The shared table reader of the procfs driver. Unlike sysfs, where every reading is a file of
// its own, procfs readings are tables: one read per file per sweep, parsed in place. The catalog
// follows the rows (CPUs, meminfo fields, interfaces, disks); each sweep checks, while it
// parses, that every table still has the same rows in the same order with the same shape, and
// the driver only rebuilds the catalog when one does not.
//
// A table is one file under procfs/ (stat.cpp, meminfo.cpp, loadavg.cpp, netdev.cpp,
// diskstats.cpp): a Table, or for keyed rows a RowTable that supplies only how a line parses,
// what its key and shape are, which series it gets and how its values are pushed.

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/platform/roots.hpp"
#include "procfs/procfs_parse.hpp"

namespace gridnode::drivers::procfs {

inline constexpr std::string_view kComponent = "procfs";
inline constexpr std::uint32_t kNoSeries = std::numeric_limits<std::uint32_t>::max();

// What a row turned into, as far as its own text tells: rows with the same key and shape in the
// same order as at discovery map onto the same series.
enum Shape : std::uint8_t {
  kBad = 0,        // malformed: counted as an error every sweep
  kOk = 1,         // for diskstats, the number of counters (11..17) instead
  kIgnored = 255,  // filtered out by node_exporter's default device filters
};

// A family, spelled as node_exporter 1.5.0 spells it.
struct FamilySpec {
  std::string_view name;
  std::string_view help;
  MetricType type;
  Scale scale;
  std::string_view unit;
};

std::uint32_t add_family(Catalog& c, const FamilySpec& f);

inline constexpr Scale kHundredths{1, -2};

// One procfs table, read whole once per sweep into a buffer that keeps its capacity.
class TableFile {
 public:
  enum class State : std::uint8_t { ok, absent, failed };

  // `records` marks seq_files that print one record per device (net/dev, diskstats): a single
  // read(2) of those stops at the end of the kernel's page-sized buffer, so they are read to
  // EOF with read_file(). The others (stat, meminfo, loadavg, uptime) are generated whole by a
  // single show(), so one pread() of a kept-open file returns all of it when the buffer is big
  // enough; the buffer grows (once) when it is not.
  TableFile(std::string path, bool records);

  const std::string& path() const { return path_; }
  State state() const { return state_; }
  std::string_view text() const { return text_; }
  const platform::Error& error() const { return error_; }
  platform::Complaint& complaint() { return complaint_; }

  void read();

 private:
  platform::Result<std::string_view> read_records();
  platform::Result<std::string_view> read_single();

  std::string path_;
  bool records_;
  platform::KernelFile file_;
  std::vector<char> buf_;
  std::string str_;
  State state_ = State::absent;
  std::string_view text_;
  platform::Error error_;
  platform::Complaint complaint_;
};

// A problem is logged when it starts and when it clears, not on every sweep; the message is
// only built then.
void log_skipped(const std::string& path, std::string_view row, std::string_view field,
                 std::string_view err);
void log_recovered(platform::Complaint& c, const std::string& path, std::string_view row);

// What every table's sweep shares: the per-series complaints and the push of one value.
class Emitter {
 public:
  // After a rediscovery: the catalog the pushes refer to, with no complaints yet.
  void reset(const Catalog& catalog) {
    catalog_ = &catalog;
    series_complaints_.assign(catalog.series.size(), platform::Complaint{});
  }

  // Parses one counter and pushes it to `series`; a bad one is skipped and counted.
  void push_value(Sweep& out, const std::string& path, std::string_view row,
                  std::uint32_t series, std::string_view text);
  // A fixed-point value with two decimals (loadavg, uptime).
  void push_hundredths(Sweep& out, const std::string& path, std::uint32_t series,
                       std::string_view text);
  void recovered(const std::string& path, std::string_view row, std::uint32_t series) {
    log_recovered(series_complaints_[series], path, row);
  }

 private:
  void value_skipped(Sweep& out, const std::string& path, std::string_view row,
                     std::uint32_t series, const platform::Error& err);

  const Catalog* catalog_ = nullptr;
  std::vector<platform::Complaint> series_complaints_;  // by series index
};

// One table: its file, and what discovery made of it.
class Table {
 public:
  Table(std::string path, bool records) : file_(std::move(path), records) {}
  virtual ~Table() = default;
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  TableFile& file() { return file_; }

  // Pushes this sweep's readings. False as soon as the table's rows differ from the plan (a
  // table that appeared or vanished too): the driver rediscovers. A table whose read failed
  // (other than being absent) keeps its plan; the driver counts its error once.
  bool emit(Sweep& out, Emitter& emitter) {
    bool readable = file_.state() == TableFile::State::ok;
    if (file_.state() == TableFile::State::failed) {
      return true;
    }
    if (readable != present_) {
      return false;
    }
    return !readable || emit_text(file_.text(), out, emitter);
  }

  // Adds this table's series to the catalog from the text this sweep read. A table whose read
  // failed in this very sweep gets no series until a later sweep reads it (its reappearance
  // triggers discovery again).
  void plan(Catalog& c) {
    present_ = file_.state() == TableFile::State::ok;
    plan_text(c, present_, present_ ? file_.text() : std::string_view());
  }

 protected:
  virtual bool emit_text(std::string_view text, Sweep& out, Emitter& emitter) = 0;
  // `present` false: the table has no series now (the text is empty).
  virtual void plan_text(Catalog& c, bool present, std::string_view text) = 0;

  const std::string& path() const { return file_.path(); }

  // A row without series (malformed, duplicate): counted every sweep, logged once.
  void bad_row(Sweep& out, std::string_view key, platform::Complaint& complaint,
               std::string_view why) {
    ++out.errors;
    if (complaint.complain()) {
      log_skipped(path(), key, "", why);
    }
  }

 private:
  TableFile file_;
  bool present_ = false;
};

// What discovery made of one row of a keyed table.
struct RowPlan {
  std::string key;  // the row's name as the kernel wrote it
  std::uint8_t shape = kBad;
  std::uint32_t first_series = kNoSeries;  // kNoSeries: malformed, duplicate or ignored
  std::uint32_t cpu = 0;                   // /proc/stat cpu rows: the CPU number
  platform::Complaint complaint;           // the row being malformed
};

// A table of keyed rows (stat, meminfo, net/dev, diskstats): the planning loop and the
// steady-state loop, written once. `Derived` supplies
//   Line parse(std::string_view text) const;  bool skip(const Line&) const;
//   std::string_view key(const Line&) const;  std::uint8_t shape(const Line&) const;
//   void add_series(Catalog&, const Line&, RowPlan&);        // at discovery; may leave none
//   void push(Sweep&, Emitter&, RowPlan&, const Line&);      // a row with series, each sweep
// and may hide the hooks below: body() (the rows after any header), begin_plan(present) and
// end_plan(Catalog&) around discovery, after_rows(Sweep&) once the rows matched, and
// kUnusable, the reason a well-formed row has no series.
template <class Derived, class Line>
class RowTable : public Table {
 public:
  using Table::Table;

 protected:
  static constexpr std::string_view kUnusable = "duplicate row";
  static std::string_view body(std::string_view text) { return text; }
  void begin_plan(bool /*present*/) {}
  void end_plan(Catalog& /*c*/) {}
  void after_rows(Sweep& /*out*/) {}

  // A device row's counters (net/dev, diskstats), to consecutive series.
  void push_columns(Sweep& out, Emitter& emitter, const RowPlan& row,
                    std::span<const std::string_view> values) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      emitter.push_value(out, path(), row.key, row.first_series + static_cast<std::uint32_t>(i),
                         values[i]);
    }
  }

  bool emit_text(std::string_view text, Sweep& out, Emitter& emitter) final {
    Derived& self = static_cast<Derived&>(*this);
    std::size_t next = 0;
    bool same = each_row(text, [&](const Line& line) {
      // The plan's row for this one, or a difference from discovery's rows.
      if (next >= rows_.size()) {
        return false;
      }
      RowPlan& row = rows_[next];
      if (row.shape != self.shape(line) || row.key != self.key(line)) {
        return false;
      }
      ++next;
      if (row.shape == kIgnored) {
        return true;
      }
      if (row.first_series == kNoSeries) {
        bad_row(out, row.key, row.complaint,
                row.shape == kBad ? std::string_view("malformed row") : Derived::kUnusable);
        return true;
      }
      self.push(out, emitter, row, line);
      return true;
    });
    if (!same || next != rows_.size()) {
      return false;
    }
    self.after_rows(out);
    return true;
  }

  void plan_text(Catalog& c, bool present, std::string_view text) final {
    Derived& self = static_cast<Derived&>(*this);
    rows_.clear();
    self.begin_plan(present);
    each_row(text, [&](const Line& line) {
      RowPlan row;
      row.key = std::string(self.key(line));
      row.shape = self.shape(line);
      self.add_series(c, line, row);
      rows_.push_back(std::move(row));
      return true;
    });
    self.end_plan(c);
  }

 private:
  // Calls `fn(line)` for every row of the table's body that the table does not skip, until it
  // returns false; false then.
  template <class Fn>
  bool each_row(std::string_view text, Fn&& fn) {
    Derived& self = static_cast<Derived&>(*this);
    std::string_view rest = Derived::body(text);
    std::string_view line_text;
    while (procfs::next_line(rest, line_text)) {
      Line line = self.parse(line_text);
      if (!self.skip(line) && !fn(line)) {
        return false;
      }
    }
    return true;
  }

  std::vector<RowPlan> rows_;
};

// The tables, one file each, in the order the driver reads them and adds their series.
std::unique_ptr<Table> make_stat_table(const platform::Roots& roots);
std::unique_ptr<Table> make_meminfo_table(const platform::Roots& roots);
std::unique_ptr<Table> make_loadavg_table(const platform::Roots& roots);
std::unique_ptr<Table> make_uptime_table(const platform::Roots& roots);
std::unique_ptr<Table> make_netdev_table(const platform::Roots& roots);
std::unique_ptr<Table> make_diskstats_table(const platform::Roots& roots);

}  // namespace gridnode::drivers::procfs
