#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "gridnode/platform/result.hpp"

namespace gridnode::drivers {

// One key of a driver's section of agent.toml ([nvml], [ipmi], …), as the agent read it: the
// agent knows no driver by name, it hands over what the file (or a flag the registry declared)
// says, and the driver's registry entry checks it.
struct OptionValue {
  std::string key;    // "library"
  std::string where;  // "/etc/gridnode/agent.toml:12", "--nvml-library": for messages
  std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>> value;

  bool operator==(const OptionValue&) const = default;
};

// A driver's section. Empty when agent.toml has none: the driver's defaults.
struct OptionSection {
  std::string name;                 // "nvml"
  std::vector<OptionValue> values;  // in file order; a later value of a key wins (flags last)

  // Sets `key` (replacing an earlier value): how a command-line flag overrides the file.
  void set(OptionValue value);

  bool operator==(const OptionSection&) const = default;
};

// Typed reads of one section. A key that is absent reads as nullopt (the driver's default);
// a key of the wrong type or out of range is an error "WHERE: SECTION.KEY: why"
// (invalid_argument), as the agent's own sections report theirs.
class OptionReader {
 public:
  explicit OptionReader(const OptionSection& section) : section_(section) {}

  // Fails on the first key not in `known`: "WHERE: unknown key SECTION.KEY".
  [[nodiscard]] platform::Result<void> only(std::initializer_list<std::string_view> known) const;

  [[nodiscard]] platform::Result<std::optional<std::string>> string(std::string_view key,
                                                                    bool allow_empty = false) const;
  [[nodiscard]] platform::Result<std::optional<std::int64_t>> integer(std::string_view key,
                                                                      std::int64_t lo,
                                                                      std::int64_t hi) const;
  // A number of seconds (integers too) in [lo, hi], to the nearest nanosecond.
  [[nodiscard]] platform::Result<std::optional<std::chrono::nanoseconds>> seconds(
      std::string_view key, double lo, double hi) const;
  [[nodiscard]] platform::Result<std::optional<bool>> boolean(std::string_view key) const;
  [[nodiscard]] platform::Result<std::optional<std::vector<std::string>>> strings(
      std::string_view key) const;

  // "WHERE: SECTION.KEY: why", for a driver's own checks of a value it read.
  [[nodiscard]] platform::Error bad(std::string_view key, std::string_view why) const;

 private:
  const OptionValue* find(std::string_view key) const;
  platform::Error bad(const OptionValue& value, std::string_view why) const;

  const OptionSection& section_;
};

}  // namespace gridnode::drivers
