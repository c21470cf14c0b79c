#pragma once

// How the policy file's sections are read: the parser every rule kind uses, the draft a kind
// fills, and the table of kinds (policy.cpp). A rule kind is one file in agent/src/policy/ and
// one line of that table, the way a driver is one folder and one line of the registry. Private
// to agent/src/policy/.

#include <chrono>
#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <string_view>

// Header-only, as in config.cpp (see agent/CMakeLists.txt).
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <nlohmann/json.hpp>

#include "gridnode/agent/policy.hpp"

namespace gridnode::agent {

using platform::Result;

// Errors name the origin and line, as config.cpp's do.
class PolicyParser {
 public:
  explicit PolicyParser(const std::string& origin) : origin_(origin) {}

  platform::Error bad(const toml::node& node, std::string_view key, std::string_view what) const {
    auto line = node.source().begin.line;
    std::string where = line > 0 ? origin_ + ":" + std::to_string(line) : origin_;
    return {std::make_error_code(std::errc::invalid_argument),
            where + ": " + std::string(key) + ": " + std::string(what)};
  }

  using Apply = std::function<Result<void>(std::string_view key, const toml::node& v,
                                           const std::string& full)>;
  Result<void> table(const toml::node& node, const std::string& name,
                     const std::set<std::string_view>& known, const Apply& apply) const {
    const auto* t = node.as_table();
    if (t == nullptr) {
      return tl::unexpected(bad(node, name, "must be a table"));
    }
    for (const auto& [k, v] : *t) {
      std::string full = name + "." + std::string(k.str());
      if (!known.contains(k.str())) {
        return tl::unexpected(bad(v, full, "unknown key"));
      }
      if (auto r = apply(k.str(), v, full); !r) {
        return r;
      }
    }
    return {};
  }

  Result<std::string> string(const toml::node& v, const std::string& key) const {
    const auto* s = v.as_string();
    if (s == nullptr || s->get().empty()) {
      return tl::unexpected(bad(v, key, "must be a non-empty string"));
    }
    return s->get();
  }

  Result<std::vector<std::string>> strings(const toml::node& v, const std::string& key) const {
    const auto* arr = v.as_array();
    if (arr == nullptr) {
      return tl::unexpected(bad(v, key, "must be an array of strings"));
    }
    std::vector<std::string> out;
    for (const auto& item : *arr) {
      auto s = string(item, key);
      if (!s) {
        return tl::unexpected(s.error());
      }
      out.push_back(std::move(*s));
    }
    return out;
  }

  Result<double> number(const toml::node& v, const std::string& key) const {
    std::optional<double> d = v.value<double>();
    if (!d || !std::isfinite(*d)) {
      return tl::unexpected(bad(v, key, "must be a number"));
    }
    return *d;
  }

  Result<std::chrono::nanoseconds> seconds(const toml::node& v, const std::string& key, double lo,
                                           double hi) const {
    std::optional<double> d = v.value<double>();
    if (!d || !std::isfinite(*d) || *d < lo || *d > hi) {
      return tl::unexpected(bad(v, key,
                                "must be a number of seconds from " + std::to_string(lo) +
                                    " to " + std::to_string(hi)));
    }
    return std::chrono::nanoseconds(static_cast<std::int64_t>(*d * 1e9 + 0.5));
  }

  Result<std::int64_t> integer(const toml::node& v, const std::string& key, std::int64_t lo,
                               std::int64_t hi) const {
    std::optional<std::int64_t> n = v.value_exact<std::int64_t>();
    if (!n || *n < lo || *n > hi) {
      return tl::unexpected(bad(v, key,
                                "must be an integer from " + std::to_string(lo) + " to " +
                                    std::to_string(hi)));
    }
    return *n;
  }

  Result<Severity> severity(const toml::node& v, const std::string& key) const {
    auto s = string(v, key);
    if (!s) {
      return tl::unexpected(s.error());
    }
    auto sev = parse_severity(*s);
    if (!sev) {
      return tl::unexpected(bad(v, key, sev.error().context));
    }
    return *sev;
  }

  Result<bool> boolean(const toml::node& v, const std::string& key) const {
    const auto* b = v.as_boolean();
    if (b == nullptr) {
      return tl::unexpected(bad(v, key, "must be true or false"));
    }
    return b->get();
  }

 private:
  const std::string& origin_;
};

// What a section's parser fills: the policy, and what is decided once every section is read.
struct PolicyDraft {
  Policy policy;
  bool intrusion = true;  // [intrusion] enabled: the chassis rule is added at the end
  Severity intrusion_severity = Severity::alert;
  std::set<std::string> limit_names;
};

// One kind of section: its name in the file, its parser, and how `gridnodectl policy` shows
// its rules (null: shown with another kind's, or not a rule).
struct RuleKind {
  std::string_view section;
  platform::Result<void> (*parse)(const PolicyParser& p, const toml::node& node,
                                  PolicyDraft& draft);
  void (*to_json)(const Policy& policy, nlohmann::json& rules);
};

inline double seconds_of(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

// access_rule.cpp
platform::Result<void> parse_access_section(const PolicyParser& p, const toml::node& node,
                                            PolicyDraft& draft);
void access_to_json(const Policy& policy, nlohmann::json& rules);
// limit_rule.cpp
platform::Result<void> parse_limit_section(const PolicyParser& p, const toml::node& node,
                                           PolicyDraft& draft);
void limits_to_json(const Policy& policy, nlohmann::json& rules);
// chassis_rule.cpp
platform::Result<void> parse_intrusion_section(const PolicyParser& p, const toml::node& node,
                                               PolicyDraft& draft);
LimitRule intrusion_rule();
// integrity_watch.cpp
platform::Result<void> parse_integrity_section(const PolicyParser& p, const toml::node& node,
                                               PolicyDraft& draft);
void integrity_to_json(const Policy& policy, nlohmann::json& rules);
// listener_rule.cpp
platform::Result<void> parse_network_section(const PolicyParser& p, const toml::node& node,
                                             PolicyDraft& draft);
void network_to_json(const Policy& policy, nlohmann::json& rules);
// accelerator_rule.cpp
platform::Result<void> parse_accelerator_section(const PolicyParser& p, const toml::node& node,
                                                 PolicyDraft& draft);
void accelerator_to_json(const Policy& policy, nlohmann::json& rules);

}  // namespace gridnode::agent
