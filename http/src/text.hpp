#pragma once

// Small text helpers shared by the http module's files.

#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include "gridnode/crypto/sha256.hpp"

namespace gridnode::http::text {

// ASCII case-insensitive equality (header names, content codings).
inline bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// Percent-decoding; '+' is a space in a query component (`plus_is_space`), itself in a path.
// A broken escape stays as it is.
inline std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    std::uint8_t byte = 0;
    if (s[i] == '%' && i + 2 < s.size() && crypto::from_hex(s.substr(i + 1, 2), {&byte, 1})) {
      out += static_cast<char>(byte);
      i += 2;
      continue;
    }
    out += plus_is_space && s[i] == '+' ? ' ' : s[i];
  }
  return out;
}

}  // namespace gridnode::http::text
