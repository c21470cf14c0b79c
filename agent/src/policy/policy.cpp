#include "gridnode/agent/policy.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "gridnode/platform/files.hpp"
#include "rule_parser.hpp"
#include "toml_guard.hpp"

namespace gridnode::agent {
using platform::Result;

namespace {

Result<void> parse_policy_section(const PolicyParser& p, const toml::node& node,
                                  PolicyDraft& draft) {
  const std::string section = "policy";
  Policy& pol = draft.policy;
  Result<void> r;
  r = p.table(node, section, {"version", "name"},
              [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                if (key == "version") {
                  auto n = p.integer(v, full, 0, std::int64_t{1} << 53);
                  if (!n) {
                    return tl::unexpected(n.error());
                  }
                  pol.version = static_cast<std::uint64_t>(*n);
                } else {
                  auto s = p.string(v, full);
                  if (!s) {
                    return tl::unexpected(s.error());
                  }
                  pol.name = *s;
                }
                return {};
              });
  return r;
}

Result<void> parse_events_section(const PolicyParser& p, const toml::node& node,
                                  PolicyDraft& draft) {
  const std::string section = "events";
  Policy& pol = draft.policy;
  Result<void> r;
  r = p.table(node, section, {"burst", "window"},
              [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                if (key == "burst") {
                  auto n = p.integer(v, full, 1, 10000);
                  if (!n) {
                    return tl::unexpected(n.error());
                  }
                  pol.events.burst = static_cast<std::uint32_t>(*n);
                  return {};
                }
                auto s = p.seconds(v, full, 1, 86400);
                if (!s) {
                  return tl::unexpected(s.error());
                }
                pol.events.window = *s;
                return {};
              });
  return r;
}

// The sections a policy file may have, in the order `gridnodectl policy` lists their rules: one
// line per rule kind.
constexpr RuleKind kRuleKinds[] = {
    {"policy", parse_policy_section, nullptr},
    {"events", parse_events_section, nullptr},
    {"access", parse_access_section, access_to_json},
    {"limit", parse_limit_section, limits_to_json},
    {"intrusion", parse_intrusion_section, nullptr},  // a limit: shown with them
    {"integrity", parse_integrity_section, integrity_to_json},
    {"network", parse_network_section, network_to_json},
    {"accelerator", parse_accelerator_section, accelerator_to_json},
};

std::string known_sections() {
  std::string known;
  for (const RuleKind& k : kRuleKinds) {
    known += (known.empty() ? "" : ", ") + std::string(k.section);
  }
  return known;
}

}  // namespace

std::string_view to_string(Severity s) {
  switch (s) {
    case Severity::emerg: return "emerg";
    case Severity::alert: return "alert";
    case Severity::crit: return "crit";
    case Severity::err: return "err";
    case Severity::warning: return "warning";
    case Severity::notice: return "notice";
    case Severity::info: return "info";
  }
  return "?";
}

Result<Severity> parse_severity(std::string_view text) {
  for (auto s : {Severity::emerg, Severity::alert, Severity::crit, Severity::err,
                 Severity::warning, Severity::notice, Severity::info}) {
    if (text == to_string(s)) {
      return s;
    }
  }
  return platform::fail(std::errc::invalid_argument,
                        "\"" + std::string(text) +
                            "\": must be one of emerg, alert, crit, err, warning, notice, info");
}

bool grants(const std::vector<std::string>& commands, std::string_view command) {
  return std::any_of(commands.begin(), commands.end(),
                     [&](const std::string& c) { return c == "*" || c == command; });
}

Policy default_policy() {
  Policy p;
  p.digest = crypto::sha256(std::string_view{});
  p.limits.push_back(intrusion_rule());
  return p;
}

Result<Policy> parse_policy(std::string_view text, const std::string& origin) {
  auto parsed = parse_toml(text, origin);
  if (!parsed) {
    return tl::unexpected(parsed.error());
  }
  toml::table root = std::move(*parsed);
  PolicyParser p(origin);
  PolicyDraft draft;
  Policy& pol = draft.policy;
  pol.source = origin;
  pol.digest = crypto::sha256(text);

  for (const auto& [k, node] : root) {
    const std::string section(k.str());
    const RuleKind* kind = nullptr;
    for (const RuleKind& rk : kRuleKinds) {
      if (rk.section == section) {
        kind = &rk;
      }
    }
    if (kind == nullptr) {
      return tl::unexpected(
          p.bad(node, "[" + section + "]", "unknown rule (known: " + known_sections() + ")"));
    }
    if (auto r = kind->parse(p, node, draft); !r) {
      return tl::unexpected(r.error());
    }
  }
  if (draft.intrusion) {
    LimitRule ir = intrusion_rule();
    ir.severity = draft.intrusion_severity;
    pol.limits.push_back(std::move(ir));
  }
  return std::move(draft.policy);
}

Result<Policy> read_policy(const std::string& path) {
  std::string text;
  if (auto r = platform::read_file(path, text, 1 << 20); !r) {
    return tl::unexpected(r.error());
  }
  return parse_policy(text, path);
}

nlohmann::json Policy::to_json() const {
  nlohmann::json rules = nlohmann::json::array();
  for (const RuleKind& k : kRuleKinds) {
    if (k.to_json != nullptr) {
      k.to_json(*this, rules);
    }
  }
  return {{"source", source},
          {"version", version},
          {"name", name},
          {"digest", crypto::to_hex(digest)},
          {"events", {{"burst", events.burst}, {"window_seconds", seconds_of(events.window)}}},
          {"rules", rules}};
}

}  // namespace gridnode::agent
