#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "gridnode/drivers/registry.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/platform/metrics.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::agent {

// Everything gridnoded can be told, with the embedded defaults it runs on when
// /etc/gridnode/agent.toml is absent. Durations are exact (nanoseconds).
struct Config {
  std::chrono::nanoseconds interval = std::chrono::seconds(1);
  // A sweep still running after this long marks its driver stalled (the sweep is not waited
  // for, and its late result is dropped).
  std::chrono::nanoseconds sweep_timeout = std::chrono::seconds(5);
  // Every ~N sweeps each driver looks again for chips that appeared.
  std::vector<std::string> drivers;  // empty: every driver this build has
  platform::Level log_level = platform::Level::info;

  platform::Roots roots;
  // The drivers' own sections ([nvml], [ipmi], …), as read: each driver's registry entry
  // checks its own (drivers::check_section), the agent knows none by name.
  std::vector<drivers::OptionSection> driver_sections;
  std::string state_dir = "/var/lib/gridnode";

  // Who this node is in reports. Empty id: the certificate's CN, else the host name.
  std::string node_id;
  platform::Labels node_labels;  // region, site, rack (sorted by key)
  // Every Nth report carries absolute values (the others are coded against their predecessor).
  std::uint32_t keyframe_interval = 60;

  // Where reports go (docs/protocol.md §6a). No endpoint: reports stay in the spool.
  std::vector<std::string> upstream_endpoints;  // HOST:PORT, tried in turn
  std::string upstream_ca = "/etc/gridnode/ca.crt";  // the grid CA
  std::string upstream_cert;  // empty: <state_dir>/node.crt
  std::string upstream_key;   // empty: <state_dir>/node.key
  std::string upstream_pin;   // optional: SHA-256 (hex) of the collector's public key

  // The spool (docs/spool.md): its bound, and how often appended reports are fsynced.
  std::uint64_t spool_max_bytes = std::uint64_t{256} << 20;
  std::chrono::nanoseconds spool_fsync_interval = std::chrono::seconds(1);

  // The local security policy (docs/policy.md). A policy file that is named explicitly (here or
  // by --policy) must exist; the default one may be absent (built-in default policy).
  std::string policy_file = "/etc/gridnode/policy.toml";
  bool policy_file_required = false;
  std::string policy_bundle_dir;  // signed bundles (*.bundle) dropped here; empty: none
  std::string policy_key;         // the grid's policy public key (PEM); empty: bundles refused
  std::chrono::nanoseconds policy_bundle_interval = std::chrono::seconds(5);

  // [web]: the scrape endpoint, node_exporter's --web.* flags (docs in agent.toml(5)). No listen
  // address: no port is opened.
  std::vector<std::string> web_listen;  // "HOST:PORT", ":PORT" (every address), "[::1]:PORT"
  std::string web_config_file;          // exporter-toolkit's web config; empty: plain, no auth
  std::string web_telemetry_path = "/metrics";
  // Scrapes served at once (node_exporter's --web.max-requests); more connections are refused.
  // 0: the server's own bound (64), never unbounded.
  unsigned web_max_requests = 40;

  std::string socket_path = "/run/gridnode/control.sock";
  // Who may query besides root: a group name or a numeric gid. Empty: root only.
  std::string socket_group = "gridnode";
  unsigned socket_mode = 0660;

  // Where the config came from ("built-in defaults" or the file's path), for status.
  std::string source = "built-in defaults";
};

// Parses TOML text into `base` (defaults, then the file, then flags on top). Unknown keys, wrong
// types and bad values are errors naming the key and its line: "agent.toml:7: agent.interval:
// must be between 0.01 and 3600 seconds". `origin` names the text in messages.
[[nodiscard]] platform::Result<Config> parse_config(std::string_view toml_text,
                                                    const std::string& origin, Config base = {});

// Reads and parses `path`. A missing file is no_such_file_or_directory (the caller decides
// whether defaults apply).
[[nodiscard]] platform::Result<Config> read_config(const std::string& path, Config base = {});

// What every driver is given from the config (roots, state directory, the sweep's deadline).
drivers::DriverContext driver_context(const Config& config);

// "1.5" / "0.25" / "2" seconds, as given on the command line; fractions allowed for tests.
[[nodiscard]] platform::Result<std::chrono::nanoseconds> parse_seconds(std::string_view text);

[[nodiscard]] platform::Result<platform::Level> parse_level(std::string_view text);

// "collector.example:4443", "10.0.0.5:4443", "[::1]:4443".
[[nodiscard]] platform::Result<void> check_endpoint(std::string_view text);

// A listen address as node_exporter takes it: "HOST:PORT", ":PORT", "[::1]:PORT"; port 0 to
// 65535 (0: the kernel picks one, for tests).
[[nodiscard]] platform::Result<void> check_listen_address(std::string_view text);

// A telemetry path: starts with '/', is not "/" (the index page), and holds only printable
// ASCII without spaces, quotes, '<', '>', '?' or '#'.
[[nodiscard]] platform::Result<void> check_telemetry_path(std::string_view text);

}  // namespace gridnode::agent
