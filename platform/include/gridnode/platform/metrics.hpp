#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

// The vocabulary of exact metric values shared by drivers (which produce them), protocol (which
// puts them on the wire) and the collector (which renders them): families, series, catalogs and
// the integers as the kernel gave them.
namespace gridnode::platform {

enum class MetricType : std::uint8_t { gauge, counter };

// How a kernel integer becomes the unit in the metric's name: value * mul * 10^exp10.
// 41500 millidegrees is {1, -3} -> 41.5 °C; 12 kB is {1024, 0} -> 12288 bytes.
struct Scale {
  std::uint32_t mul = 1;
  std::int8_t exp10 = 0;
  friend bool operator==(const Scale&, const Scale&) = default;
};

// One metric family: its name as node_exporter or dcgm-exporter spell it, verbatim.
struct Family {
  std::string name;
  std::string help;
  MetricType type = MetricType::gauge;
  Scale scale;
  // The human unit for tables ("°C", "V", "RPM", "W", "J", "A", "B", "s", "%"); may be empty.
  std::string unit;
  friend bool operator==(const Family&, const Family&) = default;
};

// Label pairs sorted by key; values as the kernel gave them (after node_exporter's cleaning).
using Labels = std::vector<std::pair<std::string, std::string>>;

struct Series {
  std::uint32_t family = 0;  // index into Catalog::families
  Labels labels;
  friend bool operator==(const Series&, const Series&) = default;
};

// Everything a driver can report: built when the driver discovers its sources, not per sweep,
// and immutable once published (readings refer to it by index, so a sweep allocates nothing).
struct Catalog {
  std::vector<Family> families;
  std::vector<Series> series;

  // Returns the index of the family called `family.name`, adding it if new.
  std::uint32_t add_family(Family family);
  // Adds a series (labels are sorted here) and returns its index.
  std::uint32_t add_series(std::uint32_t family, Labels labels);

  const Family& family_of(std::uint32_t series_index) const {
    return families[series[series_index].family];
  }
  // Drivers compare a fresh discovery with the published catalog and keep the old pointer
  // when nothing changed, so consumers can tell "catalog changed" by pointer.
  friend bool operator==(const Catalog&, const Catalog&) = default;
};

// An integer exactly as read: signed (temperatures can be negative) or unsigned (counters up to
// 2^64-1 are values, not errors).
struct Value {
  std::uint64_t bits = 0;
  bool is_signed = false;

  static Value of_signed(std::int64_t v) { return {static_cast<std::uint64_t>(v), true}; }
  static Value of_unsigned(std::uint64_t v) { return {v, false}; }
  std::int64_t as_int64() const { return static_cast<std::int64_t>(bits); }
  bool negative() const { return is_signed && as_int64() < 0; }
  friend bool operator==(const Value&, const Value&) = default;
};

// The value in the family's unit as a float, for the edges (JSON numbers, comparisons).
double to_double(Value value, Scale scale);

// The exact decimal text of value * scale, as Prometheus text and JSON want it: "41.5",
// "-0.25", "18446744073709.551615", "12288". No float is involved, so nothing is rounded.
// Returns the number of characters written; `out` needs at most 64 bytes.
std::size_t format_value(Value value, Scale scale, std::span<char, 64> out);
std::string format_value(Value value, Scale scale);

}  // namespace gridnode::platform
