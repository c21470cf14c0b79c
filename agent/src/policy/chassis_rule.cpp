// Rule kind `intrusion`: the chassis intrusion alarm, a limit the policy has unless it opts out.
#include "gridnode/agent/policy_engine.hpp"

#include "rule_parser.hpp"

namespace gridnode::agent {

using platform::Result;

LimitRule intrusion_rule() {
  LimitRule r;
  r.name = "intrusion";
  r.type = "intrusion";
  r.metric = "node_hwmon_intrusion_alarm";  // hwmon intrusion*_alarm, as node_exporter names it
  r.above = true;
  r.threshold = 0;  // any alarm
  r.clear = 0.5;
  r.severity = Severity::alert;
  return r;
}

Result<void> parse_intrusion_section(const PolicyParser& p, const toml::node& node, PolicyDraft& draft) {
  const std::string section = "intrusion";
  bool& intrusion = draft.intrusion;
  Severity& intrusion_severity = draft.intrusion_severity;
  Result<void> r;
  r = p.table(node, section, {"enabled", "severity"},
              [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                if (key == "enabled") {
                  auto b = p.boolean(v, full);
                  if (!b) {
                    return tl::unexpected(b.error());
                  }
                  intrusion = *b;
                  return {};
                }
                auto s = p.severity(v, full);
                if (!s) {
                  return tl::unexpected(s.error());
                }
                intrusion_severity = *s;
                return {};
              });
  return r;
}

}  // namespace gridnode::agent
