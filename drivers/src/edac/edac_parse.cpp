#include "edac/edac_parse.hpp"

namespace gridnode::drivers::edac {

std::optional<std::string_view> parse_index(std::string_view entry, std::string_view prefix) {
  if (entry.size() <= prefix.size() || entry.substr(0, prefix.size()) != prefix) {
    return std::nullopt;
  }
  std::string_view rest = entry.substr(prefix.size());
  std::size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
    ++digits;
  }
  if (digits == 0) {
    return std::nullopt;
  }
  return rest.substr(0, digits);
}

}  // namespace gridnode::drivers::edac
