#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "gridnode/agent/accelerator_control.hpp"
#include "gridnode/agent/policy.hpp"
#include "gridnode/agent/policy_checks.hpp"
#include "gridnode/agent/policy_events.hpp"
#include "gridnode/agent/sampler.hpp"
#include "gridnode/crypto/keys.hpp"
#include "gridnode/platform/peer.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::agent {

// Enforces the policy in force (docs/policy.md). Limits and intrusion are judged on the loop
// after each sampling round from the samples already there; everything that reads files or
// calls a driver library (listeners, processes, hashing, bundles, signals, power limits) runs
// on the engine's two worker threads and posts its findings back: one thread hashes (slow by
// design: the bandwidth cap), the other does the short jobs, so a 100 GB model being hashed
// never delays a termination. Loop thread only, like Agent.
class PolicyEngine {
 public:
  struct Options {
    platform::Roots roots;
    std::string policy_file;  // empty: none
    bool policy_file_required = false;  // given explicitly (--policy): absent is an error event
    std::string bundle_dir;   // signed bundles dropped here (*.bundle); empty: none
    std::string policy_key;   // PEM public key the bundles must verify with; empty: refused
    std::string state_dir;    // <state_dir>/policy.bundle keeps the last good bundle, and
                              // <state_dir>/power-caps.json the limits cap_power replaced
    std::chrono::nanoseconds bundle_interval = std::chrono::seconds(5);
    // Not owned. Null: the processes come from the accelerator drivers' samples
    // (gridnode_gpu_process_memory_used_bytes{gpu,UUID,pid}) and power limits cannot be set.
    // A control whose lists_processes() is false sets power limits; the processes still come
    // from the samples.
    AcceleratorControl* accelerator = nullptr;
  };

  PolicyEngine(asio::io_context& io, Options options);
  ~PolicyEngine();
  PolicyEngine(const PolicyEngine&) = delete;
  PolicyEngine& operator=(const PolicyEngine&) = delete;

  // Loads the policy: the last good bundle, else the policy file, else the built-in default; a
  // bad file raises an event and leaves the default in force. Also reads the power limits a
  // cap_power left in force when the agent last stopped: they are restored after the first
  // round (and capped again if the rule still holds). Reads files: call before run().
  void load();
  // Starts the periodic checks, inotify and the bundle directory scan.
  void start();
  // Cancels timers and hashing, joins the workers.
  void stop();
  // A reload (SIGHUP, gridnodectl reload): re-reads the policy file (on the worker); a bad one
  // raises an event and is ignored. Then `done` (may be empty) runs on the loop with the
  // outcome: {} when the file applied, was unchanged, or is not read (a signed bundle is in
  // force, no file is configured), else why it was rejected. Not run if the engine stopped.
  using ReloadDone = std::function<void(const platform::Result<void>&)>;
  void reload(ReloadDone done = {});

  // After each sampling round (loop): limits and intrusion.
  void on_round(const Sampler& sampler);
  // The same on given slots at `now` (tests, benchmarks).
  void evaluate(const std::vector<DriverSlot>& slots, std::chrono::steady_clock::time_point now);
  // gridnoded --once: every rule once, synchronously (no loop running; blocks). No enforcing
  // action is taken, only events.
  void check_once(const Sampler& sampler);

  // Local access: nullopt when `peer` may run `command`, else the reason (and an event).
  // `socket_group` is the control socket's group: without an [access] section its members may
  // run the read commands.
  std::optional<std::string> authorize(std::string_view command,
                                       const platform::PeerCredentials& peer,
                                       std::optional<gid_t> socket_group);
  // Groups the [access] section names (resolved), which the control socket must let in.
  std::vector<gid_t> access_groups() const;

  // What became of an offered bundle.
  struct BundleOutcome {
    enum class Result : std::uint8_t { applied, in_force, refused };
    Result result = Result::refused;
    std::string reason;  // refused: why (the policy event's reason too)
  };
  using BundleAnswer = std::function<void(const BundleOutcome&)>;
  // A bundle offered over the uplink or found in the directory: verified on a worker and, if
  // newer, applied on the loop; then `answer` (may be empty) runs on the loop, unless the engine
  // stopped meanwhile. `origin` says where it came from: a path (the source in force becomes
  // "bundle PATH") or "uplink HOST:PORT" (the source as it is). A refusal raises a policy event.
  void offer_bundle(std::string bytes, std::string origin, BundleAnswer answer = {});

  // Installs `policy` (tests; load, reload and bundles end here).
  void apply(Policy policy);
  // Called on the loop after every apply (the agent updates who the control socket lets in).
  void on_apply(std::function<void()> callback) { on_apply_ = std::move(callback); }

  const Policy& policy() const { return policy_; }
  EventLog& events() { return events_; }
  const EventLog& events() const { return events_; }
  nlohmann::json status_json() const;
  // Raises an event now (rule helpers and tests).
  void raise(PolicyEvent e);

  // Test hooks: run a check now instead of waiting for its timer.
  void check_network_now() { do_network(); }
  void check_accelerator_now() { do_accelerator(); }
  void check_integrity_now() { do_integrity_full(); }
  void scan_bundles_now() { do_scan_bundles(); }
  bool integrity_busy() const { return hashing_; }
  bool watching() const { return inotify_ != nullptr; }
  std::uint64_t bytes_hashed() const { return bytes_hashed_; }

 private:
  void arm(asio::steady_timer& timer, std::chrono::nanoseconds interval, void (PolicyEngine::*fn)());
  void do_network();
  void on_listeners(std::uint64_t generation, platform::Result<std::vector<Listener>> listeners,
                    std::map<std::uint64_t, SocketOwner> owners);
  void do_accelerator();
  void on_accelerator_processes(std::uint64_t generation,
                                platform::Result<std::vector<std::pair<AcceleratorProcess, ProcessInfo>>> procs);
  void terminate(const AcceleratorProcess& ap, const ProcessInfo& info);
  PolicyEvent accelerator_event(const AcceleratorProcess& ap, const ProcessInfo& info) const;
  void do_integrity_full();
  void do_integrity_paths();
  void on_integrity(std::uint64_t generation, std::vector<IntegrityFinding> findings,
                    std::uint64_t bytes, std::chrono::nanoseconds took);
  void start_inotify();
  void do_read_inotify();
  void do_scan_bundles();
  void arm_bundles();
  void on_bundle(std::string origin, platform::Result<Policy> policy, std::string bytes,
                 const BundleAnswer& answer);
  void on_limit(const LimitTransition& t);
  void take_processes(const std::vector<DriverSlot>& slots);
  void cap_power(const LimitRule& rule, const LimitTransition& t);
  void restore_recorded_caps();
  void load_recorded_caps();  // load(): what power-caps.json says
  std::string caps_path() const;
  void write_caps();  // worker: caps_on_disk_ (and index_caps_) to caps_path()
  // Worker: the GPUs' UUIDs in index order, after converting index_caps_ by them.
  platform::Result<std::vector<std::string>> gpu_uuids();
  void on_policy_rejected(const std::string& what, const platform::Error& error);

  asio::io_context& io_;
  Options options_;
  std::optional<crypto::PublicKey> key_;
  Policy policy_;
  std::vector<std::optional<gid_t>> access_gids_;  // per policy_.access grant
  std::uint64_t generation_ = 0;  // bumps on apply: late results of an old policy are dropped
  EventLog events_;
  LimitsEvaluator limits_;
  std::vector<LimitTransition> transitions_;  // reused per round

  // network
  std::set<std::string> reported_listeners_;  // subject#inode
  bool network_busy_ = false;
  // accelerator
  std::set<std::pair<pid_t, std::uint64_t>> reported_procs_;  // (pid, start time)
  bool accel_busy_ = false;
  std::vector<AcceleratorProcess> sampled_procs_;  // from the last round's samples
  // cap_power, per GPU (by UUID): the cap (mW) of each rule and series holding one. The limit
  // in force is the lowest; when the last one clears, the recorded original comes back.
  using CapHolder = std::pair<std::string, std::string>;  // rule name, subject
  std::map<std::string, std::map<CapHolder, std::uint32_t>> cap_holds_;
  bool restore_pending_ = false;  // loop: records of the last run may still need restoring
  bool restoring_ = false;
  // What power-caps.json says, by GPU UUID: {"GPU-…": {"gpu": 1, "original_mw": 700000,
  // "rule": "gpu-hot"}}: the limit the first cap replaced (never a cap), the rule that capped
  // first and the GPU's index then (for messages).
  struct CapRecord {
    std::uint32_t original_mw = 0;
    std::string rule;
    std::uint32_t gpu = 0;
    enum class State : std::uint8_t {
      recorded,  // from the last run: to be restored after the first round
      capped,    // a cap of this run holds it
      kept,      // could not be restored in this run: stays for the next start
    };
    State state = State::recorded;
    std::uint32_t in_force_mw = 0;  // capped: the limit this run set; 0: not known
  };
  std::map<std::string, CapRecord> caps_on_disk_;  // worker only (after load)
  // A file of the previous version, keyed by GPU index: converted to UUIDs once the GPUs are
  // known (worker only, after load).
  std::map<std::uint32_t, CapRecord> index_caps_;
  std::vector<PolicyEvent> cap_notices_;  // worker: events for the loop, from the conversion
  // integrity
  std::shared_ptr<IntegrityChecker> checker_;
  bool hashing_ = false;
  bool full_wanted_ = false;
  std::set<std::string> changed_paths_;
  std::uint64_t bytes_hashed_ = 0;
  std::chrono::nanoseconds last_pass_{0};
  std::atomic<bool> cancel_{false};
  std::unique_ptr<asio::posix::stream_descriptor> inotify_;
  std::map<int, std::string> watch_dirs_;  // inotify wd -> directory
  std::array<char, 8192> inotify_buf_{};
  // bundles
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> bundle_seen_;  // worker only
  bool scanning_ = false;
  std::function<void()> on_apply_;

  asio::steady_timer network_timer_;
  asio::steady_timer accel_timer_;
  asio::steady_timer integrity_timer_;
  asio::steady_timer debounce_timer_;
  asio::steady_timer bundle_timer_;
  bool debounce_armed_ = false;
  bool bundle_timer_armed_ = false;
  bool started_ = false;
  bool stopped_ = false;
  asio::thread_pool hash_pool_{1};
  asio::thread_pool work_pool_{1};
};

}  // namespace gridnode::agent
