#include "gridnode/drivers/options.hpp"

#include <algorithm>
#include <cmath>

namespace gridnode::drivers {

using platform::Result;

void OptionSection::set(OptionValue value) {
  std::erase_if(values, [&](const OptionValue& v) { return v.key == value.key; });
  values.push_back(std::move(value));
}

const OptionValue* OptionReader::find(std::string_view key) const {
  // The last value of a key wins: flags are appended after the file's.
  const OptionValue* found = nullptr;
  for (const auto& v : section_.values) {
    if (v.key == key) {
      found = &v;
    }
  }
  return found;
}

platform::Error OptionReader::bad(const OptionValue& value, std::string_view why) const {
  return platform::Error{std::make_error_code(std::errc::invalid_argument),
                         value.where + ": " + section_.name + "." + value.key + ": " +
                             std::string(why)};
}

platform::Error OptionReader::bad(std::string_view key, std::string_view why) const {
  if (const auto* v = find(key); v != nullptr) {
    return bad(*v, why);
  }
  return platform::Error{std::make_error_code(std::errc::invalid_argument),
                         "[" + section_.name + "]: " + std::string(key) + ": " + std::string(why)};
}

Result<void> OptionReader::only(std::initializer_list<std::string_view> known) const {
  for (const auto& v : section_.values) {
    if (std::find(known.begin(), known.end(), v.key) == known.end()) {
      return tl::unexpected(platform::Error{std::make_error_code(std::errc::invalid_argument),
                                            v.where + ": unknown key " + section_.name + "." +
                                                v.key});
    }
  }
  return {};
}

Result<std::optional<std::string>> OptionReader::string(std::string_view key,
                                                        bool allow_empty) const {
  const auto* v = find(key);
  if (v == nullptr) {
    return std::nullopt;
  }
  const auto* s = std::get_if<std::string>(&v->value);
  if (s == nullptr) {
    return tl::unexpected(bad(*v, "must be a string"));
  }
  if (!allow_empty && s->empty()) {
    return tl::unexpected(bad(*v, "must not be empty"));
  }
  return *s;
}

Result<std::optional<std::int64_t>> OptionReader::integer(std::string_view key, std::int64_t lo,
                                                          std::int64_t hi) const {
  const auto* v = find(key);
  if (v == nullptr) {
    return std::nullopt;
  }
  const auto* n = std::get_if<std::int64_t>(&v->value);
  if (n == nullptr || *n < lo || *n > hi) {
    return tl::unexpected(bad(*v, "must be an integer from " + std::to_string(lo) + " to " +
                                      std::to_string(hi)));
  }
  return *n;
}

Result<std::optional<std::chrono::nanoseconds>> OptionReader::seconds(std::string_view key,
                                                                      double lo,
                                                                      double hi) const {
  const auto* v = find(key);
  if (v == nullptr) {
    return std::nullopt;
  }
  std::optional<double> s;
  if (const auto* d = std::get_if<double>(&v->value)) {
    s = *d;
  } else if (const auto* n = std::get_if<std::int64_t>(&v->value)) {
    s = static_cast<double>(*n);
  }
  if (!s || !std::isfinite(*s) || *s < lo || *s > hi) {
    auto num = [](double x) {
      std::string t = std::to_string(x);
      t.erase(t.find_last_not_of('0') + 1);
      if (t.back() == '.') {
        t.pop_back();
      }
      return t;
    };
    return tl::unexpected(
        bad(*v, "must be a number of seconds from " + num(lo) + " to " + num(hi)));
  }
  // Rounded by hand, as the agent's own durations are (std::llround would map libm).
  return std::chrono::nanoseconds(static_cast<std::int64_t>(*s * 1e9 + 0.5));
}

Result<std::optional<bool>> OptionReader::boolean(std::string_view key) const {
  const auto* v = find(key);
  if (v == nullptr) {
    return std::nullopt;
  }
  const auto* b = std::get_if<bool>(&v->value);
  if (b == nullptr) {
    return tl::unexpected(bad(*v, "must be true or false"));
  }
  return *b;
}

Result<std::optional<std::vector<std::string>>> OptionReader::strings(std::string_view key) const {
  const auto* v = find(key);
  if (v == nullptr) {
    return std::nullopt;
  }
  const auto* a = std::get_if<std::vector<std::string>>(&v->value);
  if (a == nullptr) {
    return tl::unexpected(bad(*v, "must be an array of strings"));
  }
  return *a;
}

}  // namespace gridnode::drivers
