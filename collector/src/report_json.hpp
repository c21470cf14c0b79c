#pragma once

#include <nlohmann/json.hpp>

#include "gridnode/platform/metrics.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::collector {

// A decoded report as the sink's JSON record: {"type":"report","node":…,"seq":…,"boot_id":…,
// "time":…,"metrics":[{"name":…,"labels":{…},"value":…}],"events":[…]}. Values are JSON
// numbers: integers exactly, fractions as the nearest double of the exact decimal.
nlohmann::json report_json(const protocol::Report& report, const platform::Catalog& catalog);

// The header and events only (when the values could not be decoded).
nlohmann::json header_json(const protocol::Report& report);

// "2026-11-25T05:55:00.123456789Z"
std::string rfc3339_ns(std::uint64_t unix_ns);
// 16 bytes as the kernel prints a boot id: 8-4-4-4-12 lowercase hex.
std::string uuid_text(const protocol::BootId& id);

// Text that never throws on invalid UTF-8 (label values are the kernel's bytes).
std::string dump(const nlohmann::json& j, int indent = -1);

}  // namespace gridnode::collector
