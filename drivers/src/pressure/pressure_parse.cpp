#include "pressure/pressure_parse.hpp"

#include "gridnode/platform/files.hpp"

namespace gridnode::drivers::pressure {
namespace {

// The next space-separated word of `rest`.
std::string_view next_word(std::string_view& rest) {
  std::size_t start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(start);
  std::size_t end = rest.find(' ');
  std::string_view word = rest.substr(0, end);
  rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  return word;
}

// "avg10=0.12": the key, then a decimal number (Sscanf's %f: digits, one point).
bool average_ok(std::string_view word, std::string_view key) {
  if (word.size() <= key.size() || word.substr(0, key.size()) != key) {
    return false;
  }
  std::string_view number = word.substr(key.size());
  bool digit = false;
  bool point = false;
  for (char c : number) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      return false;
    }
  }
  return digit;
}

platform::Result<std::uint64_t> line_total(std::string_view line) {
  std::string_view rest = line;
  next_word(rest);  // some / full
  if (!average_ok(next_word(rest), "avg10=") || !average_ok(next_word(rest), "avg60=") ||
      !average_ok(next_word(rest), "avg300=")) {
    return platform::fail(std::errc::invalid_argument, "malformed pressure line");
  }
  std::string_view total = next_word(rest);
  constexpr std::string_view kTotal = "total=";
  if (total.substr(0, kTotal.size()) != kTotal || !next_word(rest).empty()) {
    return platform::fail(std::errc::invalid_argument, "malformed pressure line");
  }
  return platform::parse_uint64(total.substr(kTotal.size()));
}

}  // namespace

platform::Result<Totals> parse_totals(std::string_view text) {
  Totals totals;
  bool some = false;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    std::string_view rest = line;
    std::string_view kind = next_word(rest);
    if (kind != "some" && kind != "full") {
      continue;
    }
    auto total = line_total(line);
    if (!total) {
      return tl::unexpected(total.error());
    }
    if (kind == "some") {
      some = true;
      totals.some = *total;
    } else {
      totals.full = *total;
    }
  }
  if (!some) {
    return platform::fail(std::errc::invalid_argument, "no \"some\" line");
  }
  return totals;
}

}  // namespace gridnode::drivers::pressure
