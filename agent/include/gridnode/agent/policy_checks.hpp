#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gridnode/agent/policy.hpp"
#include "gridnode/agent/sampler.hpp"
#include "gridnode/crypto/sha256.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/platform/roots.hpp"

// The rules' checks, free of Asio: PolicyEngine schedules them (limits on the loop after each
// round, the others on its worker threads) and turns their findings into events.
namespace gridnode::agent {

// ---- limits (and the intrusion rule, which is a limit on node_hwmon_intrusion_alarm)

struct LimitTransition {
  std::size_t rule = 0;  // index into the rules given to set_rules
  bool fired = true;     // false: cleared
  std::string subject;   // metric{labels}
  double value = 0;
  platform::Labels labels;
};

// Evaluates limits against the sampler's latest sweeps. Matching series are resolved once per
// catalog (a driver publishes a new catalog only when discovery changed), so a round costs one
// pass over the readings plus one comparison per matched series. Loop thread.
class LimitsEvaluator {
 public:
  // Replaces the rules (a policy reload). A series' state (pending, firing) carries over to the
  // new rule identical to its old one (same name and definition), so a reload neither fires
  // again what fires nor forgets to clear it; a firing series of a rule that is gone or changed
  // goes into `released` as a clear transition, with its old rule (cap_power must let go).
  void set_rules(std::vector<LimitRule> rules,
                 std::vector<std::pair<LimitRule, LimitTransition>>* released = nullptr);
  const std::vector<LimitRule>& rules() const { return rules_; }
  void evaluate(const std::vector<DriverSlot>& slots, std::chrono::steady_clock::time_point now,
                std::vector<LimitTransition>& out);
  std::size_t bound_series() const { return bounds_.size(); }
  std::size_t firing() const;

 private:
  struct Bound {
    std::size_t rule = 0;
    platform::Scale scale;
    std::string subject;
    platform::Labels labels;
    std::optional<std::chrono::steady_clock::time_point> pending_since;
    bool firing = false;
  };
  void rebind(const std::vector<DriverSlot>& slots);

  std::vector<LimitRule> rules_;
  std::vector<const platform::Catalog*> seen_;
  // Per slot, per series of its catalog: the first bound and how many (bounds_ is sorted so).
  std::vector<std::vector<std::pair<std::uint32_t, std::uint32_t>>> index_;
  std::vector<Bound> bounds_;
  bool bound_ = false;
};

// ---- network listeners (/proc/net/tcp, tcp6, udp, udp6)

struct Listener {
  std::string proto;    // tcp, udp
  std::string address;  // "0.0.0.0", "127.0.0.1", "::", "::1"
  std::uint16_t port = 0;
  std::uint64_t inode = 0;
  uid_t uid = 0;
  std::string subject() const;  // "tcp:127.0.0.1:8080", "udp:[::]:53"
  bool loopback() const;
};

// One /proc/net table: TCP sockets in LISTEN, UDP sockets bound and unconnected.
[[nodiscard]] platform::Result<std::vector<Listener>> parse_proc_net(std::string_view text,
                                                                     std::string_view proto,
                                                                     bool v6);
// All four tables under the procfs root (an absent one, e.g. no IPv6, is skipped). Blocking.
[[nodiscard]] platform::Result<std::vector<Listener>> read_listeners(const platform::Roots& roots);

struct SocketOwner {
  pid_t pid = 0;
  std::string comm;
};
// Which process holds each socket inode, from <procfs>/<pid>/fd/* links "socket:[inode]".
// Blocking; only called for listeners that broke the rule.
std::map<std::uint64_t, SocketOwner> find_socket_owners(const platform::Roots& roots,
                                                        const std::set<std::uint64_t>& inodes);

bool allowed(const Listener& l, const NetworkRule& rule);

// ---- integrity

// SHA-256 of a file, read in 1 MiB chunks, at most `max_bytes_per_second` (0: no cap), giving up
// with operation_canceled when `cancel` is set. Adds what it read to `*bytes`. Blocking.
[[nodiscard]] platform::Result<crypto::Digest> hash_file(const std::string& path,
                                                         std::uint64_t max_bytes_per_second,
                                                         const std::atomic<bool>& cancel,
                                                         std::uint64_t* bytes = nullptr);

// A sha256sum file: "<64 hex>  name" or "<64 hex> *name" per line; names relative.
[[nodiscard]] platform::Result<std::map<std::string, crypto::Digest>> parse_manifest(
    std::string_view text, const std::string& origin);

struct IntegrityFinding {
  std::string path;
  std::string what;  // mismatch, missing, new, permissions, unreadable, restored
  std::string details;
  bool restored() const { return what == "restored"; }
};

// Verifies the rule's watch list. The first pass takes a baseline of what has no expected
// digest (trust on first use) and of every file's mode and owner; later passes report a change
// once, and once more when it is restored. Runs on one worker thread at a time (not thread-safe).
class IntegrityChecker {
 public:
  explicit IntegrityChecker(IntegrityRule rule) : rule_(std::move(rule)) {}

  // Every file of every watch.
  std::vector<IntegrityFinding> check_all(const std::atomic<bool>& cancel);
  // Only these paths (from inotify); paths outside every watch are ignored.
  std::vector<IntegrityFinding> check_paths(const std::set<std::string>& paths,
                                            const std::atomic<bool>& cancel);
  // The directories inotify should watch: each watched directory (and its subdirectories) and
  // each watched file's parent.
  std::vector<std::string> watch_dirs() const;
  std::uint64_t bytes_hashed() const { return bytes_; }
  std::uint64_t files_checked() const { return files_; }

 private:
  struct Known {
    std::optional<crypto::Digest> expected;  // from the policy/manifest, or the baseline
    bool from_policy = false;
    bool have_meta = false;
    mode_t mode = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string status = "ok";  // what was last reported
  };
  void load_expectations(std::vector<IntegrityFinding>& out);
  void check_file(const IntegrityWatch& w, const std::string& path, bool baselined,
                  const std::atomic<bool>& cancel, std::vector<IntegrityFinding>& out);
  void check_watch(std::size_t index, const std::atomic<bool>& cancel,
                   std::vector<IntegrityFinding>& out);
  void set_status(Known& k, const std::string& path, std::string status, std::string details,
                  std::vector<IntegrityFinding>& out);

  IntegrityRule rule_;
  bool loaded_ = false;
  std::set<std::size_t> baselined_;  // watches whose first pass is done
  std::map<std::string, Known> known_;
  std::uint64_t bytes_ = 0;
  std::uint64_t files_ = 0;
};

// ---- accelerator use

struct ProcessInfo {
  pid_t pid = 0;
  uid_t uid = 0;
  std::string user;
  std::string cgroup;  // the cgroup v2 path ("0::" line)
  std::string comm;
  std::uint64_t start_time = 0;  // clock ticks after boot: with the pid, a process's identity
};
// From <procfs>/<pid>/status, cgroup, stat. no_such_file_or_directory when it has gone.
[[nodiscard]] platform::Result<ProcessInfo> read_process(const platform::Roots& roots, pid_t pid);
bool allowed(const ProcessInfo& p, const AcceleratorRule& rule);

// Sends `signo` to the process `pid` if it is still the one that started at `start_time`
// (a pidfd, so a recycled pid is never signalled). no_such_process when it has gone.
[[nodiscard]] platform::Result<void> signal_process(const platform::Roots& roots, pid_t pid,
                                                    std::uint64_t start_time, int signo);
// Whether that process still runs (not gone, not a zombie).
bool process_alive(const platform::Roots& roots, pid_t pid, std::uint64_t start_time);

}  // namespace gridnode::agent
