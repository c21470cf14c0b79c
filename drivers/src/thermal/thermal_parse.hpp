#pragma once

#include <optional>
#include <string_view>

namespace gridnode::drivers::thermal {

// The N of a class/thermal entry called <prefix>N, matched as node_exporter's
// filepath.Glob("<prefix>[0-9]*") does: the prefix, then a digit, then anything. The label is
// the rest after the prefix, verbatim ("thermal_zone10" -> "10"). nullopt for other entries
// (e.g. "thermal_zone" alone, "cooling_device_x").
std::optional<std::string_view> parse_class_index(std::string_view entry, std::string_view prefix);

inline constexpr std::string_view kZonePrefix = "thermal_zone";
inline constexpr std::string_view kCoolingPrefix = "cooling_device";

}  // namespace gridnode::drivers::thermal
