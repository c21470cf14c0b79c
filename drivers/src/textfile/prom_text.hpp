#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::textfile {

// A sample value as written, exactly: ±magnitude × 10^exp10 ("1.5e-3" is {15, false, -4}).
// NaN and ±Inf, which the text format allows but an exact integer cannot hold, have their kind.
struct Decimal {
  enum class Kind : std::uint8_t { finite, infinite, nan };
  std::uint64_t magnitude = 0;
  bool negative = false;
  std::int32_t exp10 = 0;
  Kind kind = Kind::finite;
  friend bool operator==(const Decimal&, const Decimal&) = default;
};

// Go's strconv.ParseFloat as expfmt calls it (hex floats and '_' refused): decimal digits with an
// optional sign, point and exponent, or Inf/Infinity/NaN in any case. More than 19 significant
// digits are rounded (a float64 holds 17). invalid_argument when it is not a number.
[[nodiscard]] platform::Result<Decimal> parse_decimal(std::string_view text);

enum class TextType : std::uint8_t { counter, gauge, untyped, summary, histogram };

// One series as node_exporter's textfile collector writes it out: a summary is its quantile
// series, _sum and _count; a histogram its _bucket series (with le="+Inf" added where missing),
// _sum and _count; quantile and le values rewritten as Go formats a float64 ("1.0" -> "1").
// Every sample of a family carries every label name the family uses (missing ones as "", as
// node_exporter fills them), sorted by name.
struct TextSample {
  Labels labels;
  Decimal value;
};

struct TextFamily {
  std::string name;  // x, x_sum, x_count, x_bucket
  std::string help;  // unescaped
  bool has_help = false;
  TextType origin = TextType::untyped;  // the TYPE of the family it came from
  // What our catalog can say: counter for counters, histograms' three parts and summaries'
  // _sum and _count; gauge for gauges, untyped and summaries' quantiles.
  MetricType type = MetricType::gauge;
  std::vector<TextSample> samples;
};

// Parses the Prometheus text exposition format 0.0.4 as expfmt's TextParser (v0.37, which
// node_exporter 1.5's textfile collector uses) accepts it, and flattens it as that collector
// writes it out (above): # HELP / # TYPE lines (at most one each per family, TYPE before the
// family's samples), other comments ignored, samples `name{label="value",...} value`, a last
// line that ends without a newline refused. Also refused here, as node_exporter refuses the
// file: a sample with a timestamp. Refused further, where node_exporter's registry would drop
// samples: a series given twice. Errors are invalid_argument, "line N: why".
[[nodiscard]] platform::Result<std::vector<TextFamily>> parse_prom_text(std::string_view text);

// A value as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it (le and quantile labels):
// "0.5", "1", "1e+06", "+Inf", "NaN".
std::string format_go_float(const Decimal& d);

}  // namespace gridnode::drivers::textfile
