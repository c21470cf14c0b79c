#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include "gridnode/agent/device_events.hpp"
#include "gridnode/agent/config.hpp"
#include "gridnode/agent/control_server.hpp"
#include "gridnode/agent/exposition.hpp"
#include "gridnode/agent/nvml_accelerator_control.hpp"
#include "gridnode/agent/policy_engine.hpp"
#include "gridnode/agent/reporter.hpp"
#include "gridnode/agent/spool.hpp"
#include "gridnode/agent/uplink.hpp"
#include "gridnode/agent/sampler.hpp"
#include "gridnode/agent/web_endpoint.hpp"
#include "gridnode/platform/notify.hpp"

namespace gridnode::agent {

// The policy engine's options from the agent's config.
PolicyEngine::Options make_policy_options(const Config& config, AcceleratorControl* accelerator);

// The daemon: sampler, control socket and signals on one io_context. `run()` returns when
// SIGTERM/SIGINT arrive (or stop() is called); SIGHUP re-reads the config file.
//
// It speaks systemd's notify protocol (platform::ServiceNotifier): READY=1 once the control
// socket listens and the first sweep is done, a STATUS= line when what it says changes,
// RELOADING=1 … READY=1 around a reload, STOPPING=1, and WATCHDOG=1 from a timer on the loop
// itself, so that a wedged loop stops the pings and systemd restarts the agent.
class Agent : private ReportSink {
 public:
  // `config_path` empty: no file to reload. `flags` is applied on top of the file on every
  // (re)load so that command-line flags keep winning.
  // `notifier`: where the service notifications go (disabled: none).
  Agent(asio::io_context& io, Config config, std::string config_path,
        std::function<platform::Result<void>(Config&)> flags, platform::ServiceNotifier notifier = {});
  ~Agent();

  [[nodiscard]] platform::Result<void> start();
  void stop();
  // What a reload took: the config it applied, the policy in force after it, and the keys
  // that changed in the file but take effect only on restart ("agent.drivers", "upstream", …).
  struct Reloaded {
    std::string config;
    std::string policy;
    std::vector<std::string> on_restart;
  };
  using ReloadDone = std::function<void(const platform::Result<Reloaded>&)>;
  // Applies a new config (what can change at run time: interval, timeouts, log level, group,
  // the policy file), the same for SIGHUP and `gridnodectl reload`. A file that is refused
  // leaves everything as it was. `done` (may be empty) runs on the loop once the policy file
  // has been read too: the error is the first thing refused ("agent.toml:12: unknown key
  // agent.bogus"). A policy file refused after the config applied is an error as well (the
  // policy in force stays).
  void reload(ReloadDone done = {});

  // Answers one control request (public for tests): the commands that answer at once.
  nlohmann::json handle(const nlohmann::json& request, const platform::PeerCredentials& peer);
  // Every control request, as the socket hands them over: `reload` replies once it is done,
  // the others at once through handle().
  void answer(const nlohmann::json& request, const platform::PeerCredentials& peer,
              ControlServer::Reply reply);

  const Sampler& sampler() const { return *sampler_; }
  // The scrape endpoint (null without [web] listen addresses).
  const WebEndpoint* web() const { return web_.get(); }
  PolicyEngine& policy() { return *policy_; }
  // Accelerator control for the policy (not owned; set before start()). Null: the nvml
  // driver's (NvmlAcceleratorControl) when that driver is enabled, else none.
  void set_accelerator_control(AcceleratorControl* accelerator) { accelerator_ = accelerator; }

 private:
  [[nodiscard]] platform::Result<void> start_reports();
  // The Reporter's sink: each signed report goes into the spool, which the uplink then sends.
  void on_report(std::span<const std::uint8_t> catalog, std::span<const std::uint8_t> envelope,
                 const protocol::ReportHeader& header) override;
  void schedule_flush();
  void arm_flush_timer();
  void do_wait_signal();
  std::optional<gid_t> resolve_socket_group(const Config& c) const;
  // "sampling 312 metrics from 4 drivers, uplink connected to …, spool 0 B": the STATUS= line.
  std::string status_line() const;
  void on_first_round();
  void update_status();
  void arm_watchdog();
  void do_watchdog(std::chrono::microseconds period);
  [[nodiscard]] platform::Result<std::vector<std::string>> reload_config();
  void notify(const platform::Result<void>& sent);
  // The Prometheus text: the exposition for the drivers `include` selects (null: all), then
  // the scrape endpoint's own metrics. What `gridnodectl metrics` and a scrape both answer.
  void render_metrics(const std::vector<bool>* include, std::string& out);
  [[nodiscard]] platform::Result<void> start_web();

  asio::io_context& io_;
  Config config_;
  std::string config_path_;
  std::function<platform::Result<void>(Config&)> flags_;
  // Before the sampler (its nvml driver publishes into nvml_power_) and the policy (which calls
  // nvml_control_ from its worker), so that both go first.
  std::shared_ptr<drivers::NvmlPower> nvml_power_;
  std::unique_ptr<NvmlAcceleratorControl> nvml_control_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<WebEndpoint> web_;  // after the sampler: its handler renders the sampler's state
  std::unique_ptr<PolicyEngine> policy_;
  AcceleratorControl* accelerator_ = nullptr;
  std::optional<gid_t> socket_gid_;
  std::unique_ptr<Reporter> reporter_;  // null until the node is enrolled
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<SpoolSource> source_;
  std::unique_ptr<Uplink> uplink_;      // null without [upstream] endpoints
  std::unique_ptr<UplinkPolicy> uplink_policy_;  // the policy engine, for bundles pushed upstream
  asio::thread_pool io_pool_{1};        // blocking file I/O: the spool's fsync
  bool flushing_ = false;
  std::uint64_t spool_failures_ = 0;
  Exposition exposition_;
  DeviceEventLog device_events_;  // for `gridnodectl events`
  std::string text_;  // reused render buffer
  asio::signal_set signals_;
  asio::steady_timer flush_timer_;
  bool flush_timer_armed_ = false;
  std::chrono::steady_clock::time_point started_;
  bool ready_logged_ = false;
  std::uint32_t rounds_since_release_ = 0;  // release_memory(): rounds 1 and 5, then every 61st
  void release_memory(bool first);
  platform::ServiceNotifier notifier_;
  platform::Complaint notify_failing_;
  std::string status_sent_;  // the last STATUS= line, so that only a change is sent
  std::chrono::steady_clock::time_point status_sent_at_;
  asio::steady_timer watchdog_timer_;
  bool stopping_ = false;
  unsigned reloads_in_flight_ = 0;  // READY=1 goes out when the last one is done
};

}  // namespace gridnode::agent
