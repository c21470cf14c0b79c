#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/platform/result.hpp"

namespace gridnode::crypto {

// RFC 4648 base64 (mbedTLS's), for signed bytes kept in text records (the collector's sink).
void append_base64(std::span<const std::uint8_t> bytes, std::string& out);
[[nodiscard]] platform::Result<std::vector<std::uint8_t>> from_base64(std::string_view text);

}  // namespace gridnode::crypto
