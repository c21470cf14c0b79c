#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "gridnode/platform/result.hpp"

namespace gridnode::agent {

// One blocking request/answer on gridnoded's control socket (docs/control.md), as gridnodectl
// and tests use it. Errors say in words what a technician can do about them.
[[nodiscard]] platform::Result<nlohmann::json> control_request(
    const std::string& socket_path, const nlohmann::json& request,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace gridnode::agent
