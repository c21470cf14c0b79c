#pragma once

// Pure functions behind the hwmon driver: how node_exporter 1.5.0 (collector/hwmon_linux.go)
// splits attribute file names, cleans names, derives a chip's name from its device path,
// names each metric and parses each value. No I/O here, so each rule is tested on strings.

#include <optional>
#include <string>
#include <string_view>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::hwmon {

// An attribute file name split as node_exporter's `^([^0-9]+)([0-9]*)?(_(.+))?$` splits it
// (leftmost-first, so "temp_x1a" is type "temp", property "x1a").
struct AttributeName {
  std::string type;      // "temp", "in", "beep_enable"
  std::string sensor;    // type + decimal index: "temp1"; "vrm0" when there is no index
  std::string property;  // "input", "crit_alarm"; empty for "pwm1" or "vrm"
  bool bare = false;     // neither index nor property ("power", "vrm")
};

// nullopt when the name does not match, the index does not fit an int64, or the type is not
// one node_exporter reads (vrm, beep_enable, update_interval, in, cpu, fan, pwm, temp, curr,
// power, energy, humidity, intrusion; the match is case-sensitive).
std::optional<AttributeName> parse_attribute_name(std::string_view file_name);

// node_exporter's cleanMetricName: lower case (Go's Unicode mapping), every character other
// than [a-z0-9:_] becomes '_', then leading and trailing '_' go. "Package id 0" ->
// "package_id_0", "coretemp\n" -> "coretemp". May return an empty string.
std::string clean_metric_name(std::string_view name);

// Go's strings.ToValidUTF8(text, "\uFFFD"): each run of bytes that is not valid UTF-8
// becomes one U+FFFD. node_exporter applies it to sensor labels.
std::string to_valid_utf8(std::string_view text);

// strings.Trim(text, "\n"): node_exporter strips newlines, and only newlines, from both ends.
std::string_view trim_newlines(std::string_view text);

// The chip label from the resolved `device` link: "<parent dir>_<device dir>", both cleaned:
// ".../devices/platform/coretemp.0" -> "platform_coretemp_0",
// ".../pci0000:00/0000:00:18.3" -> "pci0000:00_0000:00:18_3". Only the device's own name
// when the parent cleans to nothing; empty when the device's name does.
std::string chip_name_from_device_path(std::string_view resolved_device_path);

// How a file's text becomes a Value.
enum class ValueKind : std::uint8_t {
  gauge,      // signed; a positive number above 2^63-1 is kept as unsigned
  counter,    // unsigned up to 2^64-1; a negative number (a broken driver) is kept as signed
  beep_flag,  // beep_enable: 1 when the text is exactly "1", otherwise 0; never fails
};

// Parses one reading. node_exporter strips newlines and then calls strconv.ParseFloat; we
// accept the integers the kernel writes, with an optional '+' as ParseFloat does, and refuse
// anything else (" 42", "1.5", "0x10", "") with invalid_argument, or with result_out_of_range
// when the number does not fit in 64 bits (ParseFloat would round it; our values stay exact).
[[nodiscard]] platform::Result<Value> parse_value(std::string_view text, ValueKind kind);

// The metric one attribute of a sensor becomes.
struct MetricSpec {
  Family family;
  ValueKind kind = ValueKind::gauge;
};

// The metric for the attribute <type><n>_<property> of a sensor (`property` empty for the
// attribute named <type><n> alone). `sensor_has_bare` says whether that bare attribute exists
// too: node_exporter then keeps "_input" in the name of the input attribute. nullopt for
// attributes node_exporter reads but does not report ("label", which becomes
// node_hwmon_sensor_label, and any property of vrm, update_interval or beep_enable other than
// the bare one). beep_enable with no bare attribute is reported by the caller as 0.
std::optional<MetricSpec> describe_attribute(std::string_view type, std::string_view property,
                                             bool sensor_has_bare);

// The two annotation families, whose value is always 1.
Family chip_names_family();    // node_hwmon_chip_names{chip,chip_name}
Family sensor_label_family();  // node_hwmon_sensor_label{chip,label,sensor}

}  // namespace gridnode::drivers::hwmon
