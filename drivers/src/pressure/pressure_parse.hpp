#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::pressure {

// The totals of one /proc/pressure/<resource> file, in microseconds:
//   some avg10=0.12 avg60=0.05 avg300=0.01 total=123456
//   full avg10=0.00 avg60=0.00 avg300=0.00 total=4567
// as procfs's parsePSIStats reads them: lines with another first word are ignored (a future
// kind of line), a "some"/"full" line must have the four fields in this order. Without a "some"
// line the file is malformed (invalid_argument); "full" is absent on cpu before Linux 5.13.
struct Totals {
  std::uint64_t some = 0;
  std::optional<std::uint64_t> full;
};

platform::Result<Totals> parse_totals(std::string_view text);

}  // namespace gridnode::drivers::pressure
