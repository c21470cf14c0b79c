#pragma once

// Pure parsers for the procfs tables the procfs driver reads. They take the text the kernel
// wrote and hand back views into it (no allocation), so that a steady-state sweep only splits
// and compares; the driver decides what a row means for the catalog. Tested on strings.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::procfs {

// Takes the next line (without its '\n') off the front of `rest`. The last line need not end
// in '\n'. Returns false when `rest` is empty.
bool next_line(std::string_view& rest, std::string_view& line);

// Takes the next field off the front of `rest`, fields being separated by ASCII whitespace
// (Go's strings.Fields, which the procfs library splits with). Empty when none is left.
std::string_view next_field(std::string_view& rest);

// A decimal with at most two fraction digits, as the kernel prints loads and uptime
// ("%lu.%02lu"): "0.15" -> 15, "12345.67" -> 1234567, "3" -> 300, "1.5" -> 150. Exact: no
// float is involved. invalid_argument for anything else (a sign, a third decimal, garbage),
// result_out_of_range when the hundredths do not fit in 64 bits.
[[nodiscard]] platform::Result<std::uint64_t> parse_hundredths(std::string_view text);

// /proc/stat. node_exporter's cpu collector reads the per-CPU "cpuN" rows (the "cpu" total
// row is not exported); its stat collector reads the scalar rows below.
// The columns of a cpu row since Linux 2.6.33: user nice system idle iowait irq softirq steal
// guest guest_nice.
inline constexpr std::size_t kCpuModes = 10;
struct StatLine {
  enum class Kind : std::uint8_t {
    cpu,        // "cpuN ..."; `cpu` holds N
    bad_cpu,    // "cpu<not a number> ..."
    btime,      // node_boot_time_seconds
    ctxt,       // node_context_switches_total
    processes,  // node_forks_total
    intr,       // node_intr_total (first value: the total; per-IRQ counts follow)
    procs_running,
    procs_blocked,
    other,  // the "cpu" total, softirq, blank lines: not ours
  };
  Kind kind = Kind::other;
  std::string_view key;   // first field
  std::uint32_t cpu = 0;  // for Kind::cpu
  std::size_t count = 0;  // values after the key, counted up to kCpuModes
  std::array<std::string_view, kCpuModes> values{};  // the first `count` of them
};
StatLine parse_stat_line(std::string_view line);

// node_exporter's cpu collector keeps each CPU's counters from going backwards (it caches the
// last values and keeps the old one when the kernel reports less, as iowait does on tickless
// kernels), but when idle drops by 3 s or more it assumes a CPU was hot-plugged and starts
// again from the new values. `state` is that cache in USER_HZ ticks (100 per second), zero
// at first; it is updated from `now` and is what gets reported.
void clamp_cpu_counters(std::array<std::uint64_t, kCpuModes>& state,
                        const std::array<std::uint64_t, kCpuModes>& now);

// /proc/meminfo: "Key:   value [kB]".
struct MeminfoLine {
  enum class Kind : std::uint8_t { blank, value, value_kb, bad };
  Kind kind = Kind::blank;
  std::string_view key;    // the key without its ':' (for Kind::bad: the first field)
  std::string_view value;  // the value text, unparsed
};
MeminfoLine parse_meminfo_line(std::string_view line);

// node_exporter's metric name for a meminfo key: "Active(anon)" -> "node_memory_Active_anon",
// plus "_bytes" when the line had a unit (which node_exporter takes to be kB whatever it says).
// Empty when the result is not a valid Prometheus metric name.
std::string meminfo_metric_name(std::string_view key, bool has_unit);

// /proc/net/dev: two header lines, then "  name: 16 counters". The name is everything before
// the last ':' (trimmed), as the procfs library takes it.
inline constexpr std::size_t kNetdevColumns = 16;
struct NetdevLine {
  enum class Kind : std::uint8_t { blank, device, bad };
  Kind kind = Kind::blank;
  std::string_view name;
  std::size_t count = 0;  // counters present, up to kNetdevColumns
  std::array<std::string_view, kNetdevColumns> values{};
};
NetdevLine parse_netdev_line(std::string_view line);

// /proc/diskstats: "major minor name" then 11 (Linux < 4.18), 15 (< 5.5) or 17 counters.
// node_exporter exports as many of its 17 metrics as the row has counters.
inline constexpr std::size_t kDiskColumns = 17;
inline constexpr std::size_t kDiskMinColumns = 11;
struct DiskstatsLine {
  enum class Kind : std::uint8_t { blank, device, bad };
  Kind kind = Kind::blank;
  std::string_view name;
  std::size_t count = 0;  // counters present, up to kDiskColumns
  std::array<std::string_view, kDiskColumns> values{};
};
DiskstatsLine parse_diskstats_line(std::string_view line);

// node_exporter 1.5.0's default --collector.diskstats.device-exclude,
// ^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$ : partitions and pseudo devices.
bool is_ignored_disk(std::string_view name);

// Debian's node_exporter 1.5.0 default --collector.netdev.device-exclude, ^lo$.
bool is_ignored_netdev(std::string_view name);

// <procfs>/sys/kernel/random/boot_id: a lower-case UUID and a newline. Returns the UUID, or
// empty when the text is not one.
std::string_view parse_boot_id(std::string_view text);

}  // namespace gridnode::drivers::procfs
