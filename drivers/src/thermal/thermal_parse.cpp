#include "thermal/thermal_parse.hpp"

namespace gridnode::drivers::thermal {

std::optional<std::string_view> parse_class_index(std::string_view entry, std::string_view prefix) {
  if (entry.size() <= prefix.size() || entry.substr(0, prefix.size()) != prefix) {
    return std::nullopt;
  }
  std::string_view rest = entry.substr(prefix.size());
  if (rest.front() < '0' || rest.front() > '9') {
    return std::nullopt;
  }
  return rest;
}

}  // namespace gridnode::drivers::thermal
