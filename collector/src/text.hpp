#pragma once

#include <nlohmann/json.hpp>

#include "gridnode/platform/metrics.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::collector {

// "2026-11-25T05:55:00.123456789Z"
std::string rfc3339_ns(std::uint64_t unix_ns);
// 16 bytes as the kernel prints a boot id: 8-4-4-4-12 lowercase hex.
std::string uuid_text(const protocol::BootId& id);

// Text that never throws on invalid UTF-8 (label values are the kernel's bytes).
std::string dump(const nlohmann::json& j, int indent = -1);

}  // namespace gridnode::collector
