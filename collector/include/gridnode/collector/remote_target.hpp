#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gridnode/platform/result.hpp"

namespace gridnode::collector {

// One remote_write target (docs/collector.md, "remote_write"): from a --remote-write URL, or a
// [[remote_write]] table of --remote-write-config FILE.
struct RemoteTarget {
  std::string url;   // http(s)://HOST:PORT/api/v1/write
  std::string name;  // names the position file; default: derived from the URL
  std::string username, password;  // basic auth (password read from password_file)
  std::string bearer_token;        // Authorization: Bearer (read from bearer_token_file)
  std::string ca_file;             // CA bundle to verify an https target with
  std::string job = "gridnode";
  // What is sent again after a failure or a restart: the samples the target acknowledged whose
  // time lies within this of the newest it acknowledged (VictoriaMetrics 1.79 answers 2xx for
  // samples it still holds in memory). 0: nothing.
  std::chrono::milliseconds resend_window{30000};
  std::size_t max_samples = 5000;  // per request
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds max_backoff{30000};
};

// The targets of a remote-write config file (TOML):
//
//   [[remote_write]]
//   url = "https://vm.example:8428/api/v1/write"
//   name = "vm"                      # optional
//   username = "grid"                # basic auth, with
//   password_file = "/etc/gridnode/vm.password"
//   # bearer_token_file = "…"        # or a bearer token
//   ca_file = "/etc/gridnode/vm-ca.crt"
//   job = "gridnode"
//   resend_window = 30               # seconds
//   max_samples_per_request = 5000
//   timeout = 30                     # seconds
//
// `defaults` gives what a table leaves out. A key the collector does not know is refused with
// file, line and key. Secrets come from files (never the command line, where ps shows them); a
// trailing newline is cut. Errors: invalid_argument ("FILE:LINE: why"), or the file's own.
[[nodiscard]] platform::Result<std::vector<RemoteTarget>> read_remote_write_config(
    const std::string& path, const RemoteTarget& defaults);

// The TOML text of such a file, parsed (tests): `origin` names it in errors; relative *_file
// paths are read as they are.
[[nodiscard]] platform::Result<std::vector<RemoteTarget>> parse_remote_write_config(
    std::string_view text, const std::string& origin, const RemoteTarget& defaults);

// The command line's remote-write options (serve and export).
struct RemoteWriteFlags {
  std::vector<std::string> urls;  // --remote-write URL (repeatable): no credentials
  std::string config;             // --remote-write-config FILE: [[remote_write]] tables
  std::string job = "gridnode";   // --remote-write-job: the default job label
  double resend_window_s = 30;    // --remote-write-resend-window: the default window
  bool empty() const { return urls.empty() && config.empty(); }
};
// Every target the flags name: the URLs', then the file's. Errors: the file's, or two targets
// with one name (invalid_argument).
[[nodiscard]] platform::Result<std::vector<RemoteTarget>> make_remote_targets(
    const RemoteWriteFlags& flags);

// A name for a target's position file from its URL: "127.0.0.1_8428-3f2a9c1d" (host and port,
// then a hash of the whole URL), so that one URL always finds its own position.
std::string default_target_name(const std::string& url);

// What a sender does after an answer (the remote-write spec: 5xx and network errors are retried
// with backoff, 429 too; other 4xx are not, the batch is dropped and logged with the body).
// 401, 403, 407, 404 and 3xx say the target is misconfigured here (credentials, address), not
// that the data is bad: the batch is kept and tried again with backoff (the sink still holds
// it), so a wrong password or path loses nothing.
enum class Outcome {
  delivered,  // 2xx: the position moves on
  retry,      // network error, 5xx, 429: back off and send the same batch again
  refused,    // 3xx, 401, 403, 404, 407: logged as an error, retried with backoff until fixed
  dropped,    // other 4xx (and 1xx): logged with the body, the batch is skipped
};
// `status` 0 means no HTTP answer (connect, TLS, timeout).
Outcome classify_response(long status);

}  // namespace gridnode::collector
