#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gridnode::drivers::amdgpu {

// The current level of a pp_dpm_* file, in MHz: the line marked '*'
// ("0: 500Mhz\n1: 1800Mhz *\n" gives 1800). nullopt when no line is marked or it is malformed.
std::optional<std::uint64_t> parse_dpm_current(std::string_view text);

// The N of "cardN" (not "card0-DP-1", not "renderD128").
std::optional<std::uint32_t> parse_card_index(std::string_view name);

}  // namespace gridnode::drivers::amdgpu
