// /proc/diskstats: node_exporter's diskstats collector, node_disk_*{device}.

#include <array>
#include <span>
#include <string>
#include <unordered_set>

#include "procfs/table.hpp"

namespace gridnode::drivers::procfs {
namespace {

constexpr Scale kMillis{1, -3};
constexpr Scale kSectors{512, 0};

// /proc/diskstats's counters in order (Documentation/admin-guide/iostats.rst).
constexpr std::array<FamilySpec, kDiskColumns> kDisk{{
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

class DiskstatsTable final : public RowTable<DiskstatsTable, DiskstatsLine> {
 public:
  explicit DiskstatsTable(const platform::Roots& roots)
      : RowTable(roots.proc("diskstats"), true) {}

  DiskstatsLine parse(std::string_view text) const { return parse_diskstats_line(text); }
  bool skip(const DiskstatsLine& line) const { return line.kind == DiskstatsLine::Kind::blank; }
  std::string_view key(const DiskstatsLine& line) const { return line.name; }

  // The number of counters, which the plan's row must keep.
  std::uint8_t shape(const DiskstatsLine& line) const {
    if (!line.name.empty() && is_ignored_disk(line.name)) {
      return kIgnored;
    }
    if (line.kind != DiskstatsLine::Kind::device) {
      return kBad;
    }
    return static_cast<std::uint8_t>(line.count);
  }

  void end_plan(Catalog& /*c*/) { names_.clear(); }

  void add_series(Catalog& c, const DiskstatsLine& line, RowPlan& row) {
    if (row.shape == kBad || row.shape == kIgnored || !names_.insert(line.name).second) {
      return;
    }
    // As many of the 17 metrics as the kernel has columns: 11 before Linux 4.18, 15 before
    // 5.5 (discards), 17 since (flushes).
    for (std::size_t i = 0; i < line.count; ++i) {
      std::uint32_t s = c.add_series(add_family(c, kDisk[i]), {{"device", row.key}});
      if (i == 0) {
        row.first_series = s;
      }
    }
  }

  // A device row holds all its counters: 11, 15 or 17.
  void push(Sweep& out, Emitter& emitter, RowPlan& row, const DiskstatsLine& line) {
    push_columns(out, emitter, row, std::span(line.values).first(line.count));
  }

 private:
  // Discovery's scratch: the names given so far (views of the text being planned).
  std::unordered_set<std::string_view> names_;
};

}  // namespace

std::unique_ptr<Table> make_diskstats_table(const platform::Roots& roots) {
  return std::make_unique<DiskstatsTable>(roots);
}

}  // namespace gridnode::drivers::procfs
