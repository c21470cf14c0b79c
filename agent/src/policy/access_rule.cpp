// Rule kind `access`: who may run which control command ([access], docs/policy.md).
#include "gridnode/agent/policy_engine.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "gridnode/agent/policy_bundle.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "policy_text.hpp"
#include "rule_parser.hpp"

namespace gridnode::agent {

using platform::Level;
using platform::LogLine;
using platform::Result;
using namespace policy_text;  // NOLINT: the policy's own helpers

Result<void> parse_access_section(const PolicyParser& p, const toml::node& node, PolicyDraft& draft) {
  const std::string section = "access";
  Policy& pol = draft.policy;
  Result<void> r;
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
  return r;
}

void access_to_json(const Policy& policy, nlohmann::json& rules) {
  if (policy.has_access) {
    nlohmann::json grants = nlohmann::json::array();
    for (const auto& g : policy.access) {
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
}

std::vector<gid_t> PolicyEngine::access_groups() const {
  std::vector<gid_t> out;
  for (const auto& gid : access_gids_) {
    if (gid) {
      out.push_back(*gid);
    }
  }
  return out;
}

std::optional<std::string> PolicyEngine::authorize(std::string_view command,
                                                   const platform::PeerCredentials& peer,
                                                   std::optional<gid_t> socket_group) {
  if (peer.uid == 0 || peer.uid == ::geteuid()) {
    return std::nullopt;
  }
  bool ok = false;
  if (policy_.has_access) {
    for (std::size_t i = 0; i < policy_.access.size(); ++i) {
      const auto& gid = access_gids_[i];
      if (gid && peer.in_group(*gid) && grants(policy_.access[i].commands, command)) {
        ok = true;
        break;
      }
    }
  } else {
    ok = socket_group && peer.in_group(*socket_group) &&
         std::find(std::begin(kDefaultReadCommands), std::end(kDefaultReadCommands), command) !=
             std::end(kDefaultReadCommands);
  }
  if (ok) {
    return std::nullopt;
  }
  std::string who = platform::user_name(peer.uid);
  PolicyEvent e;
  e.rule = "access";
  e.type = "access";
  e.severity = Severity::warning;
  e.subject = "user " + who + " (uid " + std::to_string(peer.uid) + ", pid " +
              std::to_string(peer.pid) + ")";
  e.details = "command \"" + std::string(command) + "\" refused by the local access rule";
  e.result = "refused";
  raise(std::move(e));
  return "permission denied: the policy does not let user " + who + " run \"" +
         std::string(command) + "\"";
}

}  // namespace gridnode::agent
