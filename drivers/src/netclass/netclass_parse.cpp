#include "netclass/netclass_parse.hpp"

#include <limits>

#include "gridnode/platform/files.hpp"

namespace gridnode::drivers::netclass {
namespace {

int digit_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'Z') {
    return c - 'A' + 10;
  }
  return 99;
}

}  // namespace

platform::Result<std::int64_t> parse_go_int(std::string_view text) {
  std::string_view s = platform::trim(text);
  auto bad = [&] { return platform::fail(std::errc::invalid_argument, "not an integer"); };
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) {
    return bad();
  }
  unsigned base = 10;
  bool prefixed = false;
  if (s.size() >= 2 && s[0] == '0') {
    char p = s[1];
    if (p == 'x' || p == 'X') {
      base = 16;
      s.remove_prefix(2);
      prefixed = true;
    } else if (p == 'b' || p == 'B') {
      base = 2;
      s.remove_prefix(2);
      prefixed = true;
    } else if (p == 'o' || p == 'O') {
      base = 8;
      s.remove_prefix(2);
      prefixed = true;
    } else {
      base = 8;
      s.remove_prefix(1);
      prefixed = true;
    }
  }
  // Go: "_" only with a base prefix (the leading "0" of octal counts), right after it or
  // between digits; never doubled, never last.
  unsigned __int128 magnitude = 0;
  bool any = false;
  bool underscore = false;
  for (char c : s) {
    if (c == '_') {
      if (!prefixed || underscore) {
        return bad();
      }
      underscore = true;
      continue;
    }
    underscore = false;
    int d = digit_value(c);
    if (d >= static_cast<int>(base)) {
      return bad();
    }
    magnitude = magnitude * base + static_cast<unsigned>(d);
    if (magnitude > static_cast<unsigned __int128>(std::numeric_limits<std::int64_t>::max()) + 1) {
      return platform::fail(std::errc::result_out_of_range, "integer out of range");
    }
    any = true;
  }
  if (underscore || !any) {
    return bad();
  }
  constexpr auto kMax = static_cast<unsigned __int128>(std::numeric_limits<std::int64_t>::max());
  if (!negative && magnitude > kMax) {
    return platform::fail(std::errc::result_out_of_range, "integer out of range");
  }
  if (negative) {
    return magnitude == kMax + 1 ? std::numeric_limits<std::int64_t>::min()
                                 : -static_cast<std::int64_t>(magnitude);
  }
  return static_cast<std::int64_t>(magnitude);
}

}  // namespace gridnode::drivers::netclass
