#pragma once

#include <toml++/toml.h>

#include <string>
#include <string_view>

#include "gridnode/platform/result.hpp"

namespace gridnode::agent {

// Refuses, with "origin:line: why", the TOML text that trips toml++ 3.x into undefined behaviour
// (see toml_guard.cpp). Pure.
[[nodiscard]] platform::Result<void> refuse_toml_hazards(std::string_view text,
                                                         const std::string& origin);

// toml::parse for any text from outside (policy.toml, policy bundles, agent.toml), without its
// undefined behaviour: refuse_toml_hazards first; then the code points on which toml++ 3.3
// reaches TOML_UNREACHABLE (marzer/tomlplusplus#295: most of U+00A1-U+0499, U+2C8E-U+3057 and
// U+FB26-U+FEFE, such as "ü" or "°") are handed to it as private-use code points, and put back
// into every string value of the result. A text that holds those private-use code points itself
// (U+E000-U+EBFF) is refused. Errors: "origin:line: why" (invalid_argument).
[[nodiscard]] platform::Result<toml::table> parse_toml(std::string_view text,
                                                       const std::string& origin);

}  // namespace gridnode::agent
