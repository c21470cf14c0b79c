#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gridnode/crypto/sha256.hpp"
#include "gridnode/platform/metrics.hpp"
#include "gridnode/platform/result.hpp"

// The local security policy (docs/policy.md): who may ask the agent what, who may use the
// accelerators, which files must not change, which limits must hold, which listeners may exist.
// This header is the model and its parser; policy_engine.hpp enforces it.
namespace gridnode::agent {

// syslog's severities, as protocol::Event carries them.
enum class Severity : std::uint8_t {
  emerg = 0,
  alert = 1,
  crit = 2,
  err = 3,
  warning = 4,
  notice = 5,
  info = 6,
};
std::string_view to_string(Severity s);
[[nodiscard]] platform::Result<Severity> parse_severity(std::string_view text);

// The control-socket commands a grant can name ("*" is every one). `reload` changes the agent:
// it is not among the default read commands below.
inline constexpr std::string_view kControlCommands[] = {"status", "sensors", "gpus", "samples",
                                                        "metrics", "events", "policy", "reload"};
// What members of the socket's group may do when the policy has no [access] section.
inline constexpr std::string_view kDefaultReadCommands[] = {"status", "sensors", "gpus",
                                                            "samples", "metrics", "events"};

struct AccessGrant {
  std::string group;  // a group name or a numeric gid
  std::vector<std::string> commands;
};

enum class LimitAction : std::uint8_t { report, cap_power };

// A threshold on every series of one metric family (optionally narrowed by label values),
// compared in the family's unit (°C, W, ...). Fires once the value has been beyond `threshold`
// for `for_duration`; clears when it is back beyond `clear` (hysteresis).
struct LimitRule {
  std::string name;
  std::string type = "limit";  // "intrusion" for the built-in intrusion rule
  std::string metric;
  platform::Labels match;  // label = value, all must hold
  bool above = true;       // fires above `threshold` (false: below)
  double threshold = 0;
  double clear = 0;
  std::chrono::nanoseconds for_duration{0};
  Severity severity = Severity::warning;
  LimitAction action = LimitAction::report;
  std::uint32_t power_limit_mw = 0;  // cap_power: the GPU limit while the condition holds
  bool operator==(const LimitRule&) const = default;
};

struct IntegrityWatch {
  std::string path;                     // a file or a directory (every regular file beneath)
  std::optional<crypto::Digest> sha256;  // a file's expected digest
  std::string manifest;                 // a directory's sha256sum-style list (relative names)
};

struct IntegrityRule {
  std::vector<IntegrityWatch> watch;
  std::chrono::nanoseconds interval = std::chrono::hours(1);  // full re-verification
  std::uint64_t max_bytes_per_second = std::uint64_t{64} << 20;  // hashing bandwidth cap
  Severity severity = Severity::crit;
};

struct NetworkAllow {
  std::string proto;    // tcp, udp (either address family)
  std::string address;  // empty: any; else as /proc/net shows it decoded ("127.0.0.1", "::1")
  std::uint16_t port = 0;
  bool any_port = false;
  friend bool operator==(const NetworkAllow&, const NetworkAllow&) = default;
};

struct NetworkRule {
  bool enabled = false;
  std::vector<NetworkAllow> allow;
  bool allow_loopback = true;
  std::chrono::nanoseconds interval = std::chrono::seconds(10);
  Severity severity = Severity::warning;
};

enum class AcceleratorAction : std::uint8_t { report, terminate };

struct AcceleratorRule {
  bool enabled = false;
  std::vector<std::string> users;    // names or numeric uids
  std::vector<std::string> cgroups;  // cgroup v2 path prefixes ("/system.slice/infer.service")
  AcceleratorAction action = AcceleratorAction::report;
  std::chrono::nanoseconds grace = std::chrono::seconds(10);  // SIGTERM .. SIGKILL
  std::chrono::nanoseconds interval = std::chrono::seconds(5);
  Severity severity = Severity::warning;
};

// Per rule, at most `burst` events per `window`; the rest are counted, not lost.
struct EventLimits {
  std::uint32_t burst = 5;
  std::chrono::nanoseconds window = std::chrono::minutes(1);
};

struct Policy {
  std::uint64_t version = 0;  // required (>= 1) in a signed bundle; rollback is refused
  std::string name;
  std::string source = "built-in default";
  crypto::Digest digest{};  // SHA-256 of the text it was parsed from
  bool has_access = false;  // an [access] section: only what it grants
  std::vector<AccessGrant> access;
  std::vector<LimitRule> limits;  // [[limit]] and, unless disabled, the intrusion rule
  IntegrityRule integrity;
  NetworkRule network;
  AcceleratorRule accelerator;
  EventLimits events;

  // What gridnodectl policy shows: source, version, digest and every rule.
  nlohmann::json to_json() const;
};

// The policy with no file: report intrusion alarms; everything else off; socket-group members
// read, only root and the agent's own user see the policy.
Policy default_policy();

// Parses policy TOML. Syntax errors, unknown sections ("rules") or keys and bad values are
// invalid_argument naming `origin` and the line: "policy.toml:12: limit.above: must be a number".
[[nodiscard]] platform::Result<Policy> parse_policy(std::string_view text,
                                                    const std::string& origin);
// Reads (at most 1 MiB) and parses `path`. Blocking: not on the loop.
[[nodiscard]] platform::Result<Policy> read_policy(const std::string& path);

// Whether `command` is granted by `grant`'s command list.
bool grants(const std::vector<std::string>& commands, std::string_view command);

}  // namespace gridnode::agent
