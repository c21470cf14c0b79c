#pragma once

#include <string>
#include <string_view>

#include "gridnode/platform/result.hpp"

namespace gridnode::agent {

// Refuses, with "origin:line: why", the TOML text that trips toml++ 3.x into undefined behaviour
// (see toml_guard.cpp). Call it before toml::parse on any text from outside: policy.toml,
// policy bundles, agent.toml. Pure.
[[nodiscard]] platform::Result<void> refuse_toml_hazards(std::string_view text,
                                                         const std::string& origin);

}  // namespace gridnode::agent
