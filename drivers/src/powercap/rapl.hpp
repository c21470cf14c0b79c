#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace gridnode::drivers::powercap {

// node_exporter's SanitizeMetricName (collector/helper.go): every run of characters outside
// [0-9A-Za-z_], together with the underscores around it, becomes one "_".
// "package-0-die-1" -> "package_0_die_1"; "_a..b_-c" -> "_a_b_c".
std::string sanitize_metric_name(std::string_view name);

// strconv.Atoi: an optional sign, then decimal digits, fitting in 64 bits.
std::optional<std::int64_t> parse_atoi(std::string_view text);

// Go's filepath.Clean, lexically: "/sys//class/./powercap/" -> "/sys/class/powercap". The
// `path` label is node_exporter's filepath.Join(<sysfs>, "class/powercap", <zone>), which cleans.
std::string clean_path(std::string_view path);

// Names zones as procfs's GetRaplZones does, in the order the zones are listed (sorted
// directory entries): a name with exactly one '-' followed by an integer gives that integer as
// index and the part before the '-' as name ("package-1" -> {1, "package"}); any other name keeps
// itself and takes as index the usage count of that name so far ("dram", "dram" -> 0, 1). After
// each zone the count of its name becomes index + 1 (so "dram-5" then "dram" gives 6), as there.
class RaplNamer {
 public:
  std::pair<std::int64_t, std::string> next(std::string_view name);

 private:
  std::map<std::string, std::int64_t, std::less<>> counts_;
};

// Turns a zone's energy_uj, which wraps, into a counter that keeps increasing while we run.
//
// The kernel's contract (Documentation/ABI/testing/sysfs-class-powercap): energy_uj is the
// "current energy counter in micro joules" and max_energy_range_uj the "range of the above
// energy counter", i.e. energy_uj takes values 0..max_energy_range_uj and wraps to 0 after the
// maximum. (intel_rapl_common.c: the hardware counter is a 32-bit count of energy units;
// max_energy_range_uj is 0xffffffff units in µJ; energy_uj is count * unit in µJ.) So when a
// reading is below the previous one, the counter went round once: the energy used since the
// last reading is (max + 1 - last) + raw, and the reported value is raw plus (max + 1) for every
// wrap seen. Strictly the hardware's modulus is max + one energy unit (15-61 µJ), which sysfs
// does not expose; max + 1 is the documented range, and the difference is under one unit per
// wrap (around 1e-9 of the counter's range). We can see one wrap per interval only: sweeps
// must come faster than the counter wraps (at 300 W, a 262 kJ range wraps every ~14 minutes).
//
// A reading that goes back while max_energy_range_uj is unknown (unreadable, zero) or below
// the previous reading is not a wrap we can size: it is taken as a reset (someone wrote 0 to
// energy_uj, or the zone was re-registered), and the reported counter restarts from the raw
// value, a drop that Prometheus-style consumers read as a counter reset.
//
// The first reading is reported as is, so that the value equals node_exporter's until the first
// wrap. All arithmetic is on uint64_t and wraps modulo 2^64, which is also right for a counter
// whose range is the full 64 bits (max + 1 == 0 there).
class EnergyCounter {
 public:
  std::uint64_t update(std::uint64_t raw, std::optional<std::uint64_t> max_range);
  // Forget the history (the next reading is reported raw).
  void reset() { *this = EnergyCounter(); }

 private:
  bool primed_ = false;
  std::uint64_t last_ = 0;
  std::uint64_t offset_ = 0;
};

}  // namespace gridnode::drivers::powercap
