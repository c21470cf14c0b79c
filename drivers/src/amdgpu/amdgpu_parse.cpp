#include "amdgpu/amdgpu_parse.hpp"

#include "gridnode/platform/files.hpp"

namespace gridnode::drivers::amdgpu {

std::optional<std::uint64_t> parse_dpm_current(std::string_view text) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    line = platform::trim(line);
    if (!line.ends_with('*')) {
      continue;
    }
    // "<level>: <value><unit> *"; the unit is "Mhz" (amdgpu's spelling) or "MHz".
    auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    std::string_view rest = platform::trim(line.substr(colon + 1));
    std::size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
      ++digits;
    }
    std::string_view unit = rest.substr(digits);
    if (digits == 0 || !(unit.starts_with("Mhz") || unit.starts_with("MHz"))) {
      return std::nullopt;
    }
    auto value = platform::parse_uint64(rest.substr(0, digits));
    return value ? std::optional<std::uint64_t>(*value) : std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::uint32_t> parse_card_index(std::string_view name) {
  if (!name.starts_with("card") || name.size() == 4 || name.size() > 12) {
    return std::nullopt;
  }
  std::string_view digits = name.substr(4);
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
  }
  auto v = platform::parse_uint64(digits);
  return v ? std::optional<std::uint32_t>(static_cast<std::uint32_t>(*v)) : std::nullopt;
}

}  // namespace gridnode::drivers::amdgpu
