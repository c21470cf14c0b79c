#include "gridnode/agent/policy.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

// Header-only, as in config.cpp (see agent/CMakeLists.txt).
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include "gridnode/drivers/ascend.hpp"
#include "gridnode/platform/files.hpp"
#include "toml_guard.hpp"

namespace gridnode::agent {
namespace {

using platform::Result;

// Errors name the origin and line, as config.cpp's do.
class Parser {
 public:
  explicit Parser(const std::string& origin) : origin_(origin) {}

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

// "tcp:22", "udp:*:123", "tcp:127.0.0.1:8080", "tcp:[::1]:631", "tcp:*" (any port).
Result<NetworkAllow> parse_allow(std::string_view text) {
  NetworkAllow a;
  auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return platform::fail(std::errc::invalid_argument, "\"" + std::string(text) +
                                                           "\": PROTO:PORT or PROTO:ADDRESS:PORT "
                                                           "expected (tcp:22, udp:127.0.0.1:53)");
  }
  a.proto = std::string(text.substr(0, colon));
  if (a.proto != "tcp" && a.proto != "udp") {
    return platform::fail(std::errc::invalid_argument,
                          "\"" + std::string(text) + "\": the protocol must be tcp or udp");
  }
  std::string_view rest = text.substr(colon + 1);
  auto last = rest.rfind(':');
  std::string_view port = rest;
  if (last != std::string_view::npos) {
    std::string_view addr = rest.substr(0, last);
    port = rest.substr(last + 1);
    if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') {
      addr = addr.substr(1, addr.size() - 2);
    }
    if (addr.empty()) {
      return platform::fail(std::errc::invalid_argument,
                            "\"" + std::string(text) + "\": empty address (use *)");
    }
    if (addr != "*") {
      a.address = std::string(addr);
    }
  }
  if (port == "*") {
    a.any_port = true;
    return a;
  }
  auto n = platform::parse_uint64(port);
  if (!n || *n > 65535) {
    return platform::fail(std::errc::invalid_argument,
                          "\"" + std::string(text) + "\": the port must be 0 to 65535 or *");
  }
  a.port = static_cast<std::uint16_t>(*n);
  return a;
}

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

std::string to_text(const NetworkAllow& a) {
  std::string port = a.any_port ? "*" : std::to_string(a.port);
  if (a.address.empty()) {
    return a.proto + ":" + port;
  }
  bool v6 = a.address.find(':') != std::string::npos;
  return a.proto + ":" + (v6 ? "[" + a.address + "]" : a.address) + ":" + port;
}

double seconds_of(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

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
  Parser p(origin);
  Policy pol;
  pol.source = origin;
  pol.digest = crypto::sha256(text);
  bool intrusion = true;
  Severity intrusion_severity = Severity::alert;
  std::set<std::string> limit_names;

  for (const auto& [k, node] : root) {
    const std::string section(k.str());
    Result<void> r;
    if (section == "policy") {
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
    } else if (section == "events") {
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
    } else if (section == "access") {
      pol.has_access = true;
      r = p.table(node, section, {"allow"},
                  [&](std::string_view, const toml::node& v, const std::string& full) -> Result<void> {
                    const auto* arr = v.as_array();
                    if (arr == nullptr) {
                      return tl::unexpected(p.bad(v, full, "must be an array of tables ([[access.allow]])"));
                    }
                    for (const auto& item : *arr) {
                      AccessGrant g;
                      auto t = p.table(item, full, {"group", "commands"},
                                       [&](std::string_view key, const toml::node& w, const std::string& f) -> Result<void> {
                                         if (key == "group") {
                                           auto s = p.string(w, f);
                                           if (!s) {
                                             return tl::unexpected(s.error());
                                           }
                                           g.group = *s;
                                           return {};
                                         }
                                         auto cmds = p.strings(w, f);
                                         if (!cmds) {
                                           return tl::unexpected(cmds.error());
                                         }
                                         for (const auto& c : *cmds) {
                                           if (c != "*" && std::find(std::begin(kControlCommands), std::end(kControlCommands), c) == std::end(kControlCommands)) {
                                             return tl::unexpected(p.bad(w, f, "unknown command \"" + c + "\" (known: status, sensors, gpus, samples, metrics, events, policy, reload, *)"));
                                           }
                                         }
                                         g.commands = std::move(*cmds);
                                         return {};
                                       });
                      if (!t) {
                        return t;
                      }
                      if (g.group.empty()) {
                        return tl::unexpected(p.bad(item, full, "needs a group"));
                      }
                      pol.access.push_back(std::move(g));
                    }
                    return {};
                  });
    } else if (section == "limit") {
      const auto* arr = node.as_array();
      if (arr == nullptr) {
        r = tl::unexpected(p.bad(node, "limit", "must be an array of tables ([[limit]])"));
      }
      for (std::size_t i = 0; r && arr != nullptr && i < arr->size(); ++i) {
        const toml::node& item = *arr->get(i);
        LimitRule l;
        bool has_above = false, has_below = false, has_clear = false;
        double power_watts = 0;
        r = p.table(item, "limit", {"name", "metric", "labels", "above", "below", "clear", "for", "severity", "action", "power_limit"},
                    [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                      if (key == "name" || key == "metric" || key == "action") {
                        auto s = p.string(v, full);
                        if (!s) {
                          return tl::unexpected(s.error());
                        }
                        if (key == "name") {
                          if (!limit_names.insert(*s).second) {
                            return tl::unexpected(p.bad(v, full, "\"" + *s + "\" names another limit already"));
                          }
                          l.name = *s;
                        } else if (key == "metric") {
                          l.metric = *s;
                        } else if (*s == "report") {
                          l.action = LimitAction::report;
                        } else if (*s == "cap_power") {
                          l.action = LimitAction::cap_power;
                        } else {
                          return tl::unexpected(p.bad(v, full, "must be report or cap_power"));
                        }
                      } else if (key == "labels") {
                        const auto* lt = v.as_table();
                        if (lt == nullptr) {
                          return tl::unexpected(p.bad(v, full, "must be a table of label = \"value\""));
                        }
                        for (const auto& [lk, lv] : *lt) {
                          auto s = p.string(lv, full + "." + std::string(lk.str()));
                          if (!s) {
                            return tl::unexpected(s.error());
                          }
                          l.match.emplace_back(std::string(lk.str()), *s);
                        }
                        std::sort(l.match.begin(), l.match.end());
                      } else if (key == "above" || key == "below" || key == "clear") {
                        auto d = p.number(v, full);
                        if (!d) {
                          return tl::unexpected(d.error());
                        }
                        if (key == "clear") {
                          l.clear = *d;
                          has_clear = true;
                        } else {
                          l.above = key == "above";
                          l.threshold = *d;
                          (key == "above" ? has_above : has_below) = true;
                        }
                      } else if (key == "for") {
                        auto s = p.seconds(v, full, 0, 86400);
                        if (!s) {
                          return tl::unexpected(s.error());
                        }
                        l.for_duration = *s;
                      } else if (key == "severity") {
                        auto s = p.severity(v, full);
                        if (!s) {
                          return tl::unexpected(s.error());
                        }
                        l.severity = *s;
                      } else if (key == "power_limit") {
                        auto d = p.number(v, full);
                        if (!d || *d <= 0 || *d > 100000) {
                          return tl::unexpected(p.bad(v, full, "must be a number of watts above 0"));
                        }
                        power_watts = *d;
                      }
                      return {};
                    });
        if (!r) {
          break;
        }
        if (l.name.empty() || l.metric.empty()) {
          r = tl::unexpected(p.bad(item, "limit", "needs a name and a metric"));
        } else if (has_above == has_below) {
          r = tl::unexpected(p.bad(item, "limit." + l.name, "needs exactly one of above or below"));
        } else if (has_clear && (l.above ? l.clear > l.threshold : l.clear < l.threshold)) {
          r = tl::unexpected(p.bad(item, "limit." + l.name + ".clear",
                                   l.above ? "must not be above the threshold" : "must not be below the threshold"));
        } else if (l.action == LimitAction::cap_power && power_watts == 0) {
          r = tl::unexpected(p.bad(item, "limit." + l.name, "action cap_power needs power_limit (watts)"));
        } else if (std::string why; l.action == LimitAction::cap_power &&
                                    !drivers::accelerator_power_capable(l.metric, &why)) {
          // Said when the policy is loaded: a rule that could never act is a broken rule.
          r = tl::unexpected(p.bad(item, "limit." + l.name + ".action", why));
        } else if (l.action != LimitAction::cap_power && power_watts != 0) {
          r = tl::unexpected(p.bad(item, "limit." + l.name, "power_limit goes with action = \"cap_power\""));
        } else {
          if (!has_clear) {
            l.clear = l.threshold;
          }
          l.power_limit_mw = static_cast<std::uint32_t>(power_watts * 1000 + 0.5);
          pol.limits.push_back(std::move(l));
        }
      }
    } else if (section == "intrusion") {
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
    } else if (section == "integrity") {
      r = p.table(node, section, {"interval", "max_bytes_per_second", "severity", "watch"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    if (key == "interval") {
                      auto s = p.seconds(v, full, 1, 7 * 86400);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      pol.integrity.interval = *s;
                    } else if (key == "max_bytes_per_second") {
                      auto n = p.integer(v, full, 4096, std::int64_t{1} << 40);
                      if (!n) {
                        return tl::unexpected(n.error());
                      }
                      pol.integrity.max_bytes_per_second = static_cast<std::uint64_t>(*n);
                    } else if (key == "severity") {
                      auto s = p.severity(v, full);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      pol.integrity.severity = *s;
                    } else {
                      const auto* arr = v.as_array();
                      if (arr == nullptr) {
                        return tl::unexpected(p.bad(v, full, "must be an array of tables ([[integrity.watch]])"));
                      }
                      for (const auto& item : *arr) {
                        IntegrityWatch w;
                        auto t = p.table(item, full, {"path", "sha256", "manifest"},
                                         [&](std::string_view wk, const toml::node& wv, const std::string& f) -> Result<void> {
                                           auto s = p.string(wv, f);
                                           if (!s) {
                                             return tl::unexpected(s.error());
                                           }
                                           if (wk == "sha256") {
                                             auto d = crypto::digest_from_hex(*s);
                                             if (!d) {
                                               return tl::unexpected(p.bad(wv, f, "must be 64 hex digits"));
                                             }
                                             w.sha256 = *d;
                                           } else if (s->front() != '/') {
                                             return tl::unexpected(p.bad(wv, f, "must be an absolute path"));
                                           } else {
                                             (wk == "path" ? w.path : w.manifest) = *s;
                                           }
                                           return {};
                                         });
                        if (!t) {
                          return t;
                        }
                        if (w.path.empty()) {
                          return tl::unexpected(p.bad(item, full, "needs a path"));
                        }
                        if (w.sha256 && !w.manifest.empty()) {
                          return tl::unexpected(p.bad(item, full, "takes sha256 or manifest, not both"));
                        }
                        pol.integrity.watch.push_back(std::move(w));
                      }
                    }
                    return {};
                  });
    } else if (section == "network") {
      pol.network.enabled = true;
      r = p.table(node, section, {"enabled", "allow", "allow_loopback", "interval", "severity"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    if (key == "enabled" || key == "allow_loopback") {
                      auto b = p.boolean(v, full);
                      if (!b) {
                        return tl::unexpected(b.error());
                      }
                      (key == "enabled" ? pol.network.enabled : pol.network.allow_loopback) = *b;
                    } else if (key == "allow") {
                      const auto* arr = v.as_array();
                      if (arr == nullptr) {
                        return tl::unexpected(p.bad(v, full, "must be an array of \"tcp:22\"-style strings"));
                      }
                      for (const auto& item : *arr) {
                        auto s = p.string(item, full);
                        if (!s) {
                          return tl::unexpected(s.error());
                        }
                        auto a = parse_allow(*s);
                        if (!a) {
                          return tl::unexpected(p.bad(item, full, a.error().context));
                        }
                        pol.network.allow.push_back(*a);
                      }
                    } else if (key == "interval") {
                      auto s = p.seconds(v, full, 1, 3600);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      pol.network.interval = *s;
                    } else {
                      auto s = p.severity(v, full);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      pol.network.severity = *s;
                    }
                    return {};
                  });
    } else if (section == "accelerator") {
      pol.accelerator.enabled = true;
      r = p.table(node, section, {"enabled", "users", "cgroups", "action", "grace", "interval", "severity"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    if (key == "enabled") {
                      auto b = p.boolean(v, full);
                      if (!b) {
                        return tl::unexpected(b.error());
                      }
                      pol.accelerator.enabled = *b;
                    } else if (key == "users" || key == "cgroups") {
                      auto s = p.strings(v, full);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      (key == "users" ? pol.accelerator.users : pol.accelerator.cgroups) = *s;
                    } else if (key == "action") {
                      auto s = p.string(v, full);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      if (*s == "report") {
                        pol.accelerator.action = AcceleratorAction::report;
                      } else if (*s == "terminate") {
                        pol.accelerator.action = AcceleratorAction::terminate;
                      } else {
                        return tl::unexpected(p.bad(v, full, "must be report or terminate"));
                      }
                    } else if (key == "grace" || key == "interval") {
                      auto s = p.seconds(v, full, key == "grace" ? 0.01 : 0.1, 3600);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      (key == "grace" ? pol.accelerator.grace : pol.accelerator.interval) = *s;
                    } else {
                      auto s = p.severity(v, full);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      pol.accelerator.severity = *s;
                    }
                    return {};
                  });
    } else {
      r = tl::unexpected(p.bad(node, "[" + section + "]",
                               "unknown rule (known: policy, events, access, limit, intrusion, "
                               "integrity, network, accelerator)"));
    }
    if (!r) {
      return tl::unexpected(r.error());
    }
  }
  if (intrusion) {
    LimitRule ir = intrusion_rule();
    ir.severity = intrusion_severity;
    pol.limits.push_back(std::move(ir));
  }
  return pol;
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
  if (has_access) {
    nlohmann::json grants = nlohmann::json::array();
    for (const auto& g : access) {
      grants.push_back({{"group", g.group}, {"commands", g.commands}});
    }
    rules.push_back({{"rule", "access"}, {"type", "access"}, {"action", "refuse"}, {"allow", grants}});
  } else {
    rules.push_back({{"rule", "access"},
                     {"type", "access"},
                     {"action", "refuse"},
                     {"allow", nlohmann::json::array(
                                   {{{"group", "(the control socket's group)"},
                                     {"commands", std::vector<std::string>(
                                                      std::begin(kDefaultReadCommands),
                                                      std::end(kDefaultReadCommands))}}})}});
  }
  for (const auto& l : limits) {
    nlohmann::json j = {{"rule", l.name},
                        {"type", l.type},
                        {"metric", l.metric},
                        {l.above ? "above" : "below", l.threshold},
                        {"clear", l.clear},
                        {"for_seconds", seconds_of(l.for_duration)},
                        {"severity", to_string(l.severity)},
                        {"action", l.action == LimitAction::cap_power ? "cap_power" : "report"}};
    if (!l.match.empty()) {
      nlohmann::json m = nlohmann::json::object();
      for (const auto& [k, v] : l.match) {
        m[k] = v;
      }
      j["labels"] = m;
    }
    if (l.action == LimitAction::cap_power) {
      j["power_limit_watts"] = l.power_limit_mw / 1000.0;
    }
    rules.push_back(std::move(j));
  }
  if (!integrity.watch.empty()) {
    nlohmann::json w = nlohmann::json::array();
    for (const auto& x : integrity.watch) {
      nlohmann::json e = {{"path", x.path}};
      if (x.sha256) {
        e["sha256"] = crypto::to_hex(*x.sha256);
      }
      if (!x.manifest.empty()) {
        e["manifest"] = x.manifest;
      }
      w.push_back(std::move(e));
    }
    rules.push_back({{"rule", "integrity"},
                     {"type", "integrity"},
                     {"watch", w},
                     {"interval_seconds", seconds_of(integrity.interval)},
                     {"max_bytes_per_second", integrity.max_bytes_per_second},
                     {"severity", to_string(integrity.severity)},
                     {"action", "report"}});
  }
  if (network.enabled) {
    std::vector<std::string> allow;
    for (const auto& a : network.allow) {
      allow.push_back(to_text(a));
    }
    rules.push_back({{"rule", "network"},
                     {"type", "network"},
                     {"allow", allow},
                     {"allow_loopback", network.allow_loopback},
                     {"interval_seconds", seconds_of(network.interval)},
                     {"severity", to_string(network.severity)},
                     {"action", "report"}});
  }
  if (accelerator.enabled) {
    rules.push_back({{"rule", "accelerator"},
                     {"type", "accelerator"},
                     {"users", accelerator.users},
                     {"cgroups", accelerator.cgroups},
                     {"action", accelerator.action == AcceleratorAction::terminate ? "terminate"
                                                                                     : "report"},
                     {"grace_seconds", seconds_of(accelerator.grace)},
                     {"interval_seconds", seconds_of(accelerator.interval)},
                     {"severity", to_string(accelerator.severity)}});
  }
  return {{"source", source},
          {"version", version},
          {"name", name},
          {"digest", crypto::to_hex(digest)},
          {"events", {{"burst", events.burst}, {"window_seconds", seconds_of(events.window)}}},
          {"rules", rules}};
}

}  // namespace gridnode::agent
