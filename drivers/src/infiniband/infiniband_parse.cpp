#include "infiniband/infiniband_parse.hpp"

#include <limits>

#include "gridnode/platform/files.hpp"

namespace gridnode::drivers::infiniband {

platform::Result<std::uint32_t> parse_state_id(std::string_view text) {
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) {
    return platform::fail(std::errc::invalid_argument, "not \"ID: NAME\"");
  }
  auto id = platform::parse_uint64(text.substr(0, colon));
  if (!id) {
    return tl::unexpected(id.error());
  }
  if (*id > std::numeric_limits<std::uint32_t>::max()) {
    return platform::fail(std::errc::result_out_of_range, "state id beyond 32 bits");
  }
  return static_cast<std::uint32_t>(*id);
}

platform::Result<std::uint64_t> parse_rate(std::string_view text) {
  // procfs splits the untrimmed text after its first space: a leading space gives an empty
  // number, which ParseFloat refuses.
  std::size_t space = text.find(' ');
  if (space == std::string_view::npos) {
    return platform::fail(std::errc::invalid_argument, "no unit after the rate");
  }
  std::string_view number = text.substr(0, space);
  std::string_view whole = number;
  std::string_view fraction;
  if (std::size_t dot = number.find('.'); dot != std::string_view::npos) {
    whole = number.substr(0, dot);
    fraction = number.substr(dot + 1);
  }
  constexpr std::uint64_t kBytesPerGbit = 125000000;  // 10^9 / 8
  if (whole.empty() || fraction.size() > 6) {
    return platform::fail(std::errc::invalid_argument, "not a rate in Gb/s");
  }
  std::uint64_t gbits = 0;
  for (char ch : whole) {
    if (ch < '0' || ch > '9') {
      return platform::fail(std::errc::invalid_argument, "not a rate in Gb/s");
    }
    if (gbits > (std::numeric_limits<std::uint64_t>::max() / kBytesPerGbit - 9) / 10) {
      return platform::fail(std::errc::result_out_of_range, "rate beyond 2^64-1 B/s");
    }
    gbits = gbits * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  std::uint64_t bytes = gbits * kBytesPerGbit;
  std::uint64_t step = kBytesPerGbit;
  for (char ch : fraction) {
    if (ch < '0' || ch > '9') {
      return platform::fail(std::errc::invalid_argument, "not a rate in Gb/s");
    }
    step /= 10;
    std::uint64_t part = step * static_cast<std::uint64_t>(ch - '0');
    if (bytes > std::numeric_limits<std::uint64_t>::max() - part) {
      return platform::fail(std::errc::result_out_of_range, "rate beyond 2^64-1 B/s");
    }
    bytes += part;
  }
  return bytes;
}

bool not_available(std::string_view text) {
  return text.find("N/A (no PMA)") != std::string_view::npos;
}

}  // namespace gridnode::drivers::infiniband
