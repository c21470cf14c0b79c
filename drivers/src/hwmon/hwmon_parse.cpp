#include "hwmon/hwmon_parse.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>

namespace gridnode::drivers::hwmon {
namespace {

// The sensor types node_exporter 1.5.0 reads (hwmonSensorTypes); "freq" came later.
constexpr std::array<std::string_view, 13> kSensorTypes = {
    "vrm",  "beep_enable", "update_interval", "in",     "cpu",      "fan",      "pwm",
    "temp", "curr",        "power",           "energy", "humidity", "intrusion"};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Decodes one UTF-8 sequence at the front of `s` as Go's utf8.DecodeRuneInString does: an
// invalid byte (stray continuation, overlong form, surrogate, above U+10FFFF, truncated
// sequence) is one rune of width 1, reported as -1.
struct Rune {
  std::int32_t code;
  std::size_t width;
};

Rune decode_rune(std::string_view s) {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return i < s.size() && b(i) >= lo && b(i) <= hi;
  };
  unsigned c0 = b(0);
  if (c0 < 0x80) {
    return {static_cast<std::int32_t>(c0), 1};
  }
  if (c0 >= 0xC2 && c0 <= 0xDF && cont(1)) {
    return {static_cast<std::int32_t>(((c0 & 0x1F) << 6) | (b(1) & 0x3F)), 2};
  }
  if (c0 >= 0xE0 && c0 <= 0xEF) {
    unsigned lo = c0 == 0xE0 ? 0xA0 : 0x80;
    unsigned hi = c0 == 0xED ? 0x9F : 0xBF;
    if (cont(1, lo, hi) && cont(2)) {
      return {static_cast<std::int32_t>(((c0 & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F)),
              3};
    }
    return {-1, 1};
  }
  if (c0 >= 0xF0 && c0 <= 0xF4) {
    unsigned lo = c0 == 0xF0 ? 0x90 : 0x80;
    unsigned hi = c0 == 0xF4 ? 0x8F : 0xBF;
    if (cont(1, lo, hi) && cont(2) && cont(3)) {
      return {static_cast<std::int32_t>(((c0 & 0x07) << 18) | ((b(1) & 0x3F) << 12) |
                                        ((b(2) & 0x3F) << 6) | (b(3) & 0x3F)),
              4};
    }
  }
  return {-1, 1};
}

// Go's unicode.ToLower, restricted to what can survive cleaning: only results in [a-z]
// matter, and besides A-Z only two runes lower-case into ASCII.
std::int32_t to_lower(std::int32_t code) {
  if (code >= 'A' && code <= 'Z') {
    return code + ('a' - 'A');
  }
  if (code == 0x0130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE
    return 'i';
  }
  if (code == 0x212A) {  // KELVIN SIGN
    return 'k';
  }
  return code;
}

Family make_family(std::string name, std::string help, Scale scale, std::string unit,
                   MetricType type = MetricType::gauge) {
  return Family{std::move(name), std::move(help), type, scale, std::move(unit)};
}

constexpr Scale kRaw{1, 0};
constexpr Scale kMilli{1, -3};
constexpr Scale kMicro{1, -6};

}  // namespace

std::optional<AttributeName> parse_attribute_name(std::string_view name) {
  // The regexp, matched the way a backtracking engine (and RE2's leftmost-first submatch
  // rule) does: the longest type first, then the longest index, then an optional
  // "_<property>" that must run to the end. `.` does not match a newline.
  std::size_t max_type = 0;
  while (max_type < name.size() && !is_digit(name[max_type])) {
    ++max_type;
  }
  for (std::size_t type_len = max_type; type_len >= 1; --type_len) {
    std::string_view rest = name.substr(type_len);
    std::size_t max_digits = 0;
    while (max_digits < rest.size() && is_digit(rest[max_digits])) {
      ++max_digits;
    }
    for (std::size_t digits = max_digits + 1; digits-- > 0;) {
      std::string_view tail = rest.substr(digits);
      bool matches = tail.empty() || (tail.size() >= 2 && tail[0] == '_' &&
                                      tail.substr(1).find('\n') == std::string_view::npos);
      if (!matches) {
        continue;
      }
      AttributeName out;
      out.type = std::string(name.substr(0, type_len));
      bool known = false;
      for (auto t : kSensorTypes) {
        known = known || t == out.type;
      }
      if (!known) {
        return std::nullopt;
      }
      std::int64_t index = 0;
      std::string_view id = rest.substr(0, digits);
      if (!id.empty()) {
        // strconv.Atoi: an index too large for an int drops the file.
        auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), index);
        if (ec != std::errc() || end != id.data() + id.size()) {
          return std::nullopt;
        }
      }
      out.sensor = out.type + std::to_string(index);
      if (!tail.empty()) {
        out.property = std::string(tail.substr(1));
      }
      out.bare = id.empty() && tail.empty();
      return out;
    }
  }
  return std::nullopt;
}

std::string clean_metric_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  while (!name.empty()) {
    Rune r = decode_rune(name);
    name.remove_prefix(r.width);
    std::int32_t c = to_lower(r.code);
    bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '_';
    out += keep ? static_cast<char>(c) : '_';
  }
  std::size_t first = out.find_first_not_of('_');
  if (first == std::string::npos) {
    return {};
  }
  std::size_t last = out.find_last_not_of('_');
  return out.substr(first, last - first + 1);
}

std::string to_valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_invalid_run = false;
  while (!text.empty()) {
    Rune r = decode_rune(text);
    if (r.code < 0) {
      if (!in_invalid_run) {
        out += "\xEF\xBF\xBD";
      }
      in_invalid_run = true;
    } else {
      out.append(text.substr(0, r.width));
      in_invalid_run = false;
    }
    text.remove_prefix(r.width);
  }
  return out;
}

std::string_view trim_newlines(std::string_view text) {
  while (!text.empty() && text.front() == '\n') {
    text.remove_prefix(1);
  }
  while (!text.empty() && text.back() == '\n') {
    text.remove_suffix(1);
  }
  return text;
}

std::string chip_name_from_device_path(std::string_view path) {
  // filepath.Split: the device is the last element; its parent is the element before,
  // after trailing slashes are trimmed from the prefix.
  std::size_t slash = path.rfind('/');
  std::string_view device = slash == std::string_view::npos ? path : path.substr(slash + 1);
  std::string_view prefix =
      slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash + 1);
  while (!prefix.empty() && prefix.back() == '/') {
    prefix.remove_suffix(1);
  }
  std::size_t pslash = prefix.rfind('/');
  std::string_view parent = pslash == std::string_view::npos ? prefix : prefix.substr(pslash + 1);
  std::string clean_device = clean_metric_name(device);
  std::string clean_parent = clean_metric_name(parent);
  if (!clean_parent.empty() && !clean_device.empty()) {
    return clean_parent + "_" + clean_device;
  }
  return clean_device;
}

platform::Result<Value> parse_value(std::string_view raw, ValueKind kind) {
  std::string_view text = trim_newlines(raw);
  if (kind == ValueKind::beep_flag) {
    return Value::of_signed(text == "1" ? 1 : 0);
  }
  if (text.empty()) {
    return platform::fail(std::errc::invalid_argument, "empty value");
  }
  bool negative = text.front() == '-';
  if (text.front() == '+' || negative) {
    text.remove_prefix(1);
  }
  // from_chars would take a second sign for the signed type ("+-5"); ParseFloat does not.
  if (text.empty() || !is_digit(text.front())) {
    return platform::fail(std::errc::invalid_argument, "not an integer");
  }
  std::uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), magnitude);
  if (ec == std::errc::result_out_of_range) {
    return platform::fail(std::errc::result_out_of_range, "value does not fit in 64 bits");
  }
  if (ec != std::errc() || end != text.data() + text.size()) {
    return platform::fail(std::errc::invalid_argument, "not an integer");
  }
  constexpr std::uint64_t kMaxSigned = std::numeric_limits<std::int64_t>::max();
  if (negative) {
    if (magnitude > kMaxSigned + 1) {
      return platform::fail(std::errc::result_out_of_range, "value does not fit in 64 bits");
    }
    // Two's complement of the magnitude: exact also for -2^63.
    return Value::of_signed(static_cast<std::int64_t>(~magnitude + 1));
  }
  if (kind == ValueKind::counter || magnitude > kMaxSigned) {
    return Value::of_unsigned(magnitude);
  }
  return Value::of_signed(static_cast<std::int64_t>(magnitude));
}

std::optional<MetricSpec> describe_attribute(std::string_view type, std::string_view property,
                                             bool sensor_has_bare) {
  if (property == "label") {
    return std::nullopt;
  }
  // Chip-level attributes: only the bare file counts.
  if (type == "beep_enable" || type == "vrm" || type == "update_interval") {
    if (!property.empty()) {
      return std::nullopt;
    }
    if (type == "beep_enable") {
      return MetricSpec{make_family("node_hwmon_beep_enabled", "Hardware beep enabled", kRaw, ""),
                        ValueKind::beep_flag};
    }
    if (type == "vrm") {
      return MetricSpec{make_family("node_hwmon_voltage_regulator_version",
                                    "Hardware voltage regulator", kRaw, "")};
    }
    return MetricSpec{make_family("node_hwmon_update_interval_seconds",
                                  "Hardware monitor update interval", kMilli, "s")};
  }

  std::string element(property);
  std::string name = "node_hwmon_" + std::string(type);
  if (element == "input") {
    // The input is the value and goes unnamed, unless a bare <type><n> file holds that role.
    if (sensor_has_bare) {
      name += "_input";
    }
  } else if (!element.empty()) {
    name += "_" + clean_metric_name(element);
  }
  const std::string t(type);

  // Special elements go out without a unit and unscaled.
  if (element == "fault" || element == "alarm") {
    return MetricSpec{
        make_family(name, "Hardware sensor " + element + " status (" + t + ")", kRaw, "")};
  }
  if (element == "beep") {
    return MetricSpec{
        make_family(name + "_enabled", "Hardware monitor sensor has beeping enabled", kRaw, "")};
  }
  // Everything else gets a unit, even flags such as temp1_crit_alarm (node_exporter scales
  // those by 0.001 too).
  if (type == "in" || type == "cpu") {
    return MetricSpec{make_family(name + "_volts", "Hardware monitor for voltage (" + element + ")",
                                  kMilli, "V")};
  }
  if (type == "temp" && element != "type") {
    std::string shown = element.empty() ? "input" : element;
    return MetricSpec{make_family(
        name + "_celsius", "Hardware monitor for temperature (" + shown + ")", kMilli, "°C")};
  }
  if (type == "curr") {
    return MetricSpec{
        make_family(name + "_amps", "Hardware monitor for current (" + element + ")", kMilli, "A")};
  }
  if (type == "energy") {
    return MetricSpec{make_family(name + "_joule_total",
                                  "Hardware monitor for joules used so far (" + element + ")",
                                  kMicro, "J", MetricType::counter),
                      ValueKind::counter};
  }
  if (type == "power" && element == "accuracy") {
    return MetricSpec{
        make_family(name, "Hardware monitor power meter accuracy, as a ratio", kMicro, "")};
  }
  if (type == "power" && (element == "average_interval" || element == "average_interval_min" ||
                          element == "average_interval_max")) {
    return MetricSpec{make_family(name + "_seconds",
                                  "Hardware monitor power usage update interval (" + element + ")",
                                  kMilli, "s")};
  }
  if (type == "power") {
    return MetricSpec{make_family(name + "_watt",
                                  "Hardware monitor for power usage in watts (" + element + ")",
                                  kMicro, "W")};
  }
  if (type == "humidity") {
    return MetricSpec{make_family(name,
                                  "Hardware monitor for humidity, as a ratio (multiply with 100.0 "
                                  "to get the humidity as a percentage) (" +
                                      element + ")",
                                  kMicro, "")};
  }
  if (type == "fan" &&
      (element == "input" || element == "min" || element == "max" || element == "target")) {
    return MetricSpec{make_family(
        name + "_rpm", "Hardware monitor for fan revolutions per minute (" + element + ")", kRaw,
        "RPM")};
  }
  // Anything else (pwm, intrusion, fan1_div, temp1_type, ...) goes out as it is.
  return MetricSpec{make_family(name, "Hardware monitor " + t + " element " + element, kRaw, "")};
}

Family chip_names_family() {
  return make_family("node_hwmon_chip_names", "Annotation metric for human-readable chip names",
                     kRaw, "");
}

Family sensor_label_family() {
  return make_family("node_hwmon_sensor_label", "Label for given chip and sensor", kRaw, "");
}

}  // namespace gridnode::drivers::hwmon
