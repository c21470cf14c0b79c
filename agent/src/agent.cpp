#include "gridnode/agent/agent.hpp"

#include <algorithm>
#include <csignal>

#include "gridnode/drivers/registry.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/platform/memory.hpp"

namespace gridnode::agent {

using platform::Level;
using platform::LogLine;

namespace {

constexpr std::uint32_t kReleaseEvery = 61;  // one round after the NVML driver's retry (60)

// The policy engine as the uplink's target for pushed bundles.
class EngineUplinkPolicy final : public UplinkPolicy {
 public:
  explicit EngineUplinkPolicy(PolicyEngine& engine) : engine_(engine) {}
  std::pair<std::uint64_t, crypto::Digest> in_force() const override {
    return {engine_.policy().version, engine_.policy().digest};
  }
  void offer(
      std::string bundle, std::string origin,
      std::function<void(protocol::PolicyStatus::Result, const std::string&)> answer) override {
    engine_.offer_bundle(std::move(bundle), std::move(origin),
                         [answer = std::move(answer)](const PolicyEngine::BundleOutcome& o) {
                           using R = protocol::PolicyStatus::Result;
                           switch (o.result) {
                             case PolicyEngine::BundleOutcome::Result::applied:
                               answer(R::applied, o.reason);
                               return;
                             case PolicyEngine::BundleOutcome::Result::in_force:
                               answer(R::applied, o.reason);  // "already in force"
                               return;
                             case PolicyEngine::BundleOutcome::Result::refused:
                               answer(R::refused, o.reason);
                               return;
                           }
                         });
  }

 private:
  PolicyEngine& engine_;
};

}  // namespace

Agent::Agent(asio::io_context& io, Config config, std::string config_path,
             std::function<platform::Result<void>(Config&)> flags,
             platform::ServiceNotifier notifier)
    : io_(io),
      config_(std::move(config)),
      config_path_(std::move(config_path)),
      flags_(std::move(flags)),
      signals_(io, SIGTERM, SIGINT, SIGHUP),
      flush_timer_(io),
      started_(std::chrono::steady_clock::now()),
      notifier_(std::move(notifier)),
      watchdog_timer_(io) {}

Agent::~Agent() { stop(); }

PolicyEngine::Options make_policy_options(const Config& c, AcceleratorControl* accelerator) {
  PolicyEngine::Options o;
  o.roots = c.roots;
  o.policy_file = c.policy_file;
  o.policy_file_required = c.policy_file_required;
  o.bundle_dir = c.policy_bundle_dir;
  o.policy_key = c.policy_key;
  o.state_dir = c.state_dir;
  o.bundle_interval = c.policy_bundle_interval;
  o.accelerator = accelerator;
  return o;
}

std::optional<gid_t> Agent::resolve_socket_group(const Config& c) const {
  if (c.socket_group.empty()) {
    return std::nullopt;
  }
  auto gid = platform::resolve_group(c.socket_group);
  if (!gid) {
    platform::log(Level::warning, "control",
                  LogLine("socket group unknown; only root may query")
                      .kv("group", c.socket_group)
                      .kv("err", gid.error().message()));
    return std::nullopt;
  }
  return *gid;
}

platform::Result<void> Agent::start_reports() {
  // A readable key or another node's certificate stops the start, as ssh refuses its keys.
  auto identity = load_identity(config_, false);
  if (!identity) {
    return tl::unexpected(identity.error());
  }
  if (!identity->key) {
    if (!config_.upstream_endpoints.empty()) {
      return platform::fail(std::errc::no_such_file_or_directory,
                            "an upstream is configured but there is no node key at " +
                                node_key_path(config_.state_dir) + ": run gridnoded enroll");
    }
    platform::log(Level::notice, "report",
                  LogLine("no node key: reports are not signed; run gridnoded enroll")
                      .kv("key", node_key_path(config_.state_dir)));
    return {};
  }
  const crypto::PrivateKey key = *identity->key;
  const std::optional<crypto::Certificate> cert = identity->cert;
  const std::string node = identity->node_id;

  // The spool first: after a crash it knows the last report better than the chain file.
  SpoolOptions so;
  so.max_bytes = config_.spool_max_bytes;
  so.segment_bytes = std::min<std::uint64_t>(so.segment_bytes, config_.spool_max_bytes / 8);
  so.fsync_interval = std::chrono::duration_cast<std::chrono::milliseconds>(config_.spool_fsync_interval);
  so.fsync_every = config_.spool_fsync_interval.count() == 0 ? 1 : 0;
  so.node_id = node;
  auto spool = Spool::open(config_.state_dir, std::move(so));
  if (!spool) {
    return tl::unexpected(spool.error());
  }
  spool_ = std::move(*spool);
  auto chain = read_chain(chain_path(config_.state_dir));
  if (!chain) {
    return tl::unexpected(chain.error());
  }
  auto last = spool_->last_report();
  if (!last) {
    return tl::unexpected(last.error());
  }
  if (*last && (*last)->seq > chain->seq) {
    chain = **last;
  }
  auto reporter = Reporter::create(config_, std::move(*identity), *chain);
  if (!reporter) {
    platform::log(Level::warning, "report",
                  LogLine("reports disabled").kv("err", reporter.error().message()));
    return {};
  }
  if (auto p = (*reporter)->persist_chain(chain_path(config_.state_dir)); !p) {
    return tl::unexpected(p.error());
  }
  reporter_ = std::move(*reporter);
  reporter_->set_sink(this);
  if (auto g = spool_->set_gap_signer(reporter_.get()); !g) {
    return g;
  }
  platform::log(Level::info, "report",
                LogLine("signing reports")
                    .kv("node", node)
                    .kv("next_seq", static_cast<std::int64_t>(chain->seq + 1)));

  if (config_.upstream_endpoints.empty()) {
    platform::log(Level::notice, "uplink",
                  LogLine("no upstream configured: reports stay in the spool"));
    return {};
  }
  if (!cert) {
    return platform::fail(std::errc::no_such_file_or_directory,
                          "an upstream is configured but there is no node certificate at " +
                              node_cert_path(config_.state_dir));
  }
  auto ca = crypto::Certificate::load_file(config_.upstream_ca);
  if (!ca) {
    return tl::unexpected(ca.error());
  }
  std::optional<crypto::Digest> pin;
  if (!config_.upstream_pin.empty()) {
    pin = crypto::digest_from_hex(config_.upstream_pin).value();  // checked by the config
  }
  UplinkOptions uo{.endpoints = config_.upstream_endpoints,
                   .ca = *ca,
                   .cert = *cert,
                   .key = key,
                   .pinned_server_key = pin,
                   .connect_timeout = std::chrono::seconds(10),
                   .backoff_min = std::chrono::milliseconds(500),
                   .backoff_max = std::chrono::seconds(60),
                   .idle_timeout = std::chrono::seconds(90),
                   .batch_bytes = 256 * 1024};
  source_ = std::make_unique<SpoolSource>(*spool_);
  uplink_ = std::make_unique<Uplink>(io_, std::move(uo), node, *source_);
  return uplink_->start();
}

void Agent::on_report(std::span<const std::uint8_t> catalog, std::span<const std::uint8_t> envelope,
                      const protocol::ReportHeader& header) {
  if (!spool_) {
    return;  // stopping
  }
  if (auto r = spool_->append(catalog, envelope, header.seq); !r) {
    // Not stored: upstream sees the hole in the chain; the next report is a keyframe so
    // that what follows decodes on its own.
    ++spool_failures_;
    reporter_->force_keyframe();
    platform::log(Level::err, "spool",
                  LogLine("report not spooled")
                      .kv("seq", static_cast<std::int64_t>(header.seq))
                      .kv("err", r.error().message()));
  }
  if (spool_->flush_due()) {
    schedule_flush();
  } else {
    arm_flush_timer();
  }
  if (uplink_) {
    uplink_->wake();
  }
}

// With a long sampling interval the next append may be far off: a timer makes sure what was
// appended (and the acknowledgement watermark) reaches the disk within fsync_interval anyway.
void Agent::arm_flush_timer() {
  if (flush_timer_armed_ || !spool_) {
    return;
  }
  flush_timer_armed_ = true;
  flush_timer_.expires_after(config_.spool_fsync_interval + std::chrono::milliseconds(10));
  flush_timer_.async_wait([this](const std::error_code& ec) {
    flush_timer_armed_ = false;
    if (!ec && spool_ && spool_->flush_due()) {
      schedule_flush();
    }
  });
}

void Agent::schedule_flush() {
  if (flushing_ || !spool_) {
    return;
  }
  flushing_ = true;
  // fsync can take long on a busy disk: never on the loop.
  asio::post(io_pool_, [this] {
    auto r = spool_->flush();
    asio::post(io_, [this, r] {
      flushing_ = false;
      if (!r) {
        platform::log(Level::err, "spool", LogLine("flush failed").kv("err", r.error().message()));
      }
    });
  });
}

platform::Result<void> Agent::start() {
  if (auto r = start_reports(); !r) {
    return r;
  }
  auto options = driver_context(config_);
  const bool nvml = config_.drivers.empty() ||
                    std::find(config_.drivers.begin(), config_.drivers.end(), "nvml") !=
                        config_.drivers.end();
  if (accelerator_ == nullptr && nvml) {
    // cap_power acts through the nvml driver's own library and GPU handles.
    nvml_power_ = std::make_shared<drivers::NvmlPower>();
    options.nvml_power = nvml_power_;
    nvml_control_ = std::make_unique<NvmlAcceleratorControl>(nvml_power_);
    accelerator_ = nvml_control_.get();
  }
  auto drivers = drivers::make_drivers(options, config_.drivers, config_.driver_sections);
  if (!drivers) {
    return tl::unexpected(drivers.error());
  }
  sampler_ = std::make_unique<Sampler>(io_, std::move(*drivers),
                                       Sampler::Options{config_.interval, config_.sweep_timeout});
  policy_ = std::make_unique<PolicyEngine>(io_, make_policy_options(config_, accelerator_));
  policy_->load();
  if (uplink_) {
    // Before the loop runs: the uplink's first welcome is still to come.
    uplink_policy_ = std::make_unique<EngineUplinkPolicy>(*policy_);
    uplink_->set_policy(uplink_policy_.get());
  }
  ControlServer::Options copts;
  copts.path = config_.socket_path;
  copts.mode = config_.socket_mode;
  copts.group = resolve_socket_group(config_);
  socket_gid_ = copts.group;
  copts.group_name = config_.socket_group;
  control_ = std::make_unique<ControlServer>(
      io_, copts,
      [this](const nlohmann::json& req, const platform::PeerCredentials& peer,
             ControlServer::Reply reply) { answer(req, peer, std::move(reply)); });
  if (auto r = control_->start(); !r) {
    return r;
  }
  // The [access] section's groups, and their names for a refusal's text.
  auto let_in = [this] {
    std::vector<std::string> names;
    for (const auto& grant : policy_->policy().access) {
      names.push_back(grant.group);
    }
    control_->set_extra_groups(policy_->access_groups(), std::move(names));
  };
  let_in();
  // A bundle or a reload may grant other groups: the socket's door follows the policy.
  policy_->on_apply(let_in);
  // A stranger refused at the door is an access event, as a refused command is (docs/policy.md).
  control_->on_refused([this](const platform::PeerCredentials& peer, const std::string& why) {
    PolicyEvent e;
    e.rule = "access";
    e.type = "access";
    e.severity = Severity::warning;
    e.subject = "user " + platform::user_name(peer.uid) + " (uid " + std::to_string(peer.uid) +
                ", pid " + std::to_string(peer.pid) + ")";
    e.details = "refused at the control socket: " + why;
    e.result = "refused";
    policy_->raise(std::move(e));
  });
  policy_->start();
  if (auto r = start_web(); !r) {
    return r;
  }
  sampler_->on_round([this] {
    device_events_.on_round(sampler_->slots(), std::chrono::system_clock::now());
    policy_->on_round(*sampler_);
    auto events = policy_->events().take_report_events(std::chrono::steady_clock::now());
    if (reporter_) {
      reporter_->add_events(std::move(events));
      reporter_->on_round(*sampler_);
    }
    if (!ready_logged_) {
      on_first_round();
    } else {
      update_status();
      if (++rounds_since_release_ >= kReleaseEvery) {
        release_memory(false);
      }
    }
  });
  sampler_->start();
  do_wait_signal();
  arm_watchdog();
  platform::log(Level::notice, "gridnoded",
                LogLine("started").kv("version", version()).kv("config", config_.source));
  return {};
}

// Before the first sweep, so that the port listens when READY=1 goes out; a scrape before
// the first sweep gets the drivers as pending (gridnode_driver_up 0) and no samples.
platform::Result<void> Agent::start_web() {
  if (config_.web_listen.empty()) {
    return {};  // no listen address: no port (node_exporter always listens; we only when asked)
  }
  std::vector<std::string> names;
  for (const auto& s : sampler_->slots()) {
    names.emplace_back(s.driver->name());
  }
  auto web = WebEndpoint::make(io_, config_, std::move(names),
                               [this](const std::vector<bool>* include, std::string& out) {
                                 render_metrics(include, out);
                               });
  if (!web) {
    return tl::unexpected(web.error());
  }
  web_ = std::move(*web);
  return {};
}

void Agent::render_metrics(const std::vector<bool>* include, std::string& out) {
  exposition_.render_prometheus(*sampler_, out, include);
  if (web_) {
    web_->append_metrics(out);
  }
}

// The control socket already listens (start() opened it before the sampler ran), so both of
// READY=1's conditions hold from here on.
void Agent::on_first_round() {
  ready_logged_ = true;
  std::size_t samples = 0;
  for (const auto& s : sampler_->slots()) {
    samples += s.front.readings.size();
  }
  platform::log(Level::notice, "gridnoded",
                LogLine("ready")
                    .kv("samples", static_cast<std::int64_t>(samples))
                    .kv("socket", config_.socket_path));
  status_sent_ = status_line();
  status_sent_at_ = std::chrono::steady_clock::now();
  notify(notifier_.ready(status_sent_));
  release_memory(true);
  // Once more at the 5th round: a driver's first sweep can end after the first round (the NVML
  // driver's dlopen, which runs the loader, was seen at the 3rd second), and what it ran then
  // would stay mapped until the 61st.
  rounds_since_release_ = kReleaseEvery - 4;
}

// Start-up is over: its code, read-only data and freed heap leave this process's resident set
// (platform/memory.hpp says what and how; README.md's cost paragraph gives the figures). Again
// every kReleaseEvery rounds, for what ran once since: the NVML driver's dlopen retry (the
// loader's code and symbol tables, every 60 sweeps without a driver), a reload.
void Agent::release_memory(bool first) {
  rounds_since_release_ = 0;
  const platform::Released released = platform::release_startup_memory();
  if (first) {
    platform::log(Level::info, "gridnoded",
                  LogLine("start-up memory released")
                      .kv("code_unmapped_kib", static_cast<std::int64_t>(released.code / 1024))
                      .kv("heap_trimmed", released.heap_trimmed ? "yes" : "no"));
  }
}

std::string Agent::status_line() const {
  std::size_t samples = 0;
  std::size_t up = 0;
  for (const auto& s : sampler_->slots()) {
    samples += s.front.readings.size();
    up += s.front.readings.empty() ? 0 : 1;
  }
  std::string line = "sampling " + std::to_string(samples) + " metrics from " + std::to_string(up) +
                     " of " + std::to_string(sampler_->slots().size()) + " drivers, ";
  if (!uplink_) {
    line += config_.upstream_endpoints.empty() ? "no upstream configured"
                                               : "uplink off (node not enrolled)";
  } else if (uplink_->connected()) {
    line += "uplink connected to " + uplink_->status_json().value("connected_to", std::string());
  } else {
    line += "uplink " + uplink_->status_json().value("state", std::string()) + " (" +
            std::to_string(config_.upstream_endpoints.size()) + " endpoints)";
  }
  if (spool_) {
    SpoolStats st = spool_->stats();
    line += ", spool " + human_bytes(st.unacked_bytes) + " unacked of " + human_bytes(st.bytes);
  } else {
    line += ", reports not signed (no node key)";
  }
  return line;
}

// At most one STATUS= per kStatusEvery: the spool's figures move with every round and ack,
// and systemd needs no datagram per second to show a line a human reads now and then.
void Agent::update_status() {
  constexpr auto kStatusEvery = std::chrono::seconds(5);
  const auto now = std::chrono::steady_clock::now();
  if (!notifier_.enabled() || now - status_sent_at_ < kStatusEvery) {
    return;
  }
  std::string line = status_line();
  if (line != status_sent_) {
    status_sent_ = std::move(line);
    status_sent_at_ = now;
    notify(notifier_.status(status_sent_));
  }
}

// The ping comes from the loop itself: when a handler blocks the loop, the pings stop, and
// systemd kills and restarts us after WatchdogSec=. Twice per interval, as sd_watchdog_enabled(3)
// advises, so that one late tick is not yet a restart.
void Agent::arm_watchdog() {
  const auto period = notifier_.watchdog_interval() / 2;
  if (period.count() == 0) {
    return;
  }
  notify(notifier_.watchdog());
  watchdog_timer_.expires_after(period);
  do_watchdog(period);
}

void Agent::do_watchdog(std::chrono::microseconds period) {
  watchdog_timer_.async_wait([this, period](const std::error_code& ec) {
    if (ec) {
      return;  // stopping
    }
    notify(notifier_.watchdog());
    watchdog_timer_.expires_at(watchdog_timer_.expiry() + period);
    if (watchdog_timer_.expiry() < std::chrono::steady_clock::now()) {
      watchdog_timer_.expires_after(period);  // a late loop skips to the next slot, no burst
    }
    do_watchdog(period);
  });
}

void Agent::notify(const platform::Result<void>& sent) {
  if (!sent) {
    if (notify_failing_.complain()) {
      platform::log(Level::warning, "gridnoded",
                    LogLine("cannot notify systemd").kv("err", sent.error().message()));
    }
  } else if (notify_failing_.release()) {
    platform::log(Level::notice, "gridnoded", LogLine("notifying systemd again"));
  }
}

void Agent::stop() {
  if (!stopping_) {
    stopping_ = true;
    notify(notifier_.stopping());
  }
  watchdog_timer_.cancel();
  signals_.cancel();
  if (sampler_) {
    sampler_->stop();
  }
  if (control_) {
    control_->stop();
  }
  if (web_) {
    web_->close();
  }
  if (policy_) {
    policy_->stop();
  }
  flush_timer_.cancel();
  if (uplink_) {
    uplink_->stop();
    uplink_.reset();
    source_.reset();
  }
  io_pool_.join();  // a flush in progress finishes
  if (spool_) {
    if (auto r = spool_->close(); !r) {
      platform::log(Level::err, "spool", LogLine("close failed").kv("err", r.error().message()));
    }
    spool_.reset();
  }
  if (reporter_) {
    reporter_->sync_chain();
  }
}

void Agent::do_wait_signal() {
  signals_.async_wait([this](const std::error_code& ec, int signo) {
    if (ec) {
      return;
    }
    if (signo == SIGHUP) {
      reload();
      do_wait_signal();
      return;
    }
    platform::log(Level::notice, "gridnoded", LogLine("stopping").kv("signal", strsignal(signo)));
    stop();  // closes listeners and timers: run() drains and returns
  });
}

// systemd holds `systemctl reload` until READY=1 comes back (and, with ExecReload=gridnodectl
// reload, until that command exits), and counts the time against TimeoutStartSec=; a rejected
// file is still the end of the reload.
void Agent::reload(ReloadDone done) {
  if (reloads_in_flight_++ == 0) {
    notify(notifier_.reloading());
  }
  auto finish = [this, done = std::move(done)](const platform::Result<Reloaded>& outcome) {
    if (--reloads_in_flight_ == 0 && sampler_) {
      status_sent_ = status_line();
      status_sent_at_ = std::chrono::steady_clock::now();
      notify(notifier_.ready(status_sent_));
    }
    if (done) {
      done(outcome);
    }
  };
  auto on_restart = reload_config();
  if (!on_restart) {
    finish(tl::unexpected(on_restart.error()));
    return;
  }
  Reloaded reloaded{config_.source, {}, std::move(*on_restart)};
  if (!policy_) {
    finish(std::move(reloaded));
    return;
  }
  policy_->reload([this, finish = std::move(finish), reloaded = std::move(reloaded)](
                      const platform::Result<void>& policy) mutable {
    if (!policy) {
      platform::Error e = policy.error();
      e.context = "policy rejected, keeping the policy in force (" + policy_->policy().source +
                  "; " + reloaded.config + " was applied): " + e.context;
      finish(tl::unexpected(std::move(e)));
      return;
    }
    reloaded.policy = policy_->policy().source;
    finish(reloaded);
  });
}

platform::Result<std::vector<std::string>> Agent::reload_config() {
  if (config_path_.empty()) {
    platform::log(Level::notice, "gridnoded", LogLine("reload: no config file, nothing to do"));
    return std::vector<std::string>{};
  }
  auto fresh = read_config(config_path_);
  if (!fresh && fresh.error().code == std::errc::no_such_file_or_directory) {
    fresh = Config{};
  }
  if (!fresh) {
    // A bad file on reload keeps the agent on the config it has.
    platform::log(Level::err, "gridnoded",
                  LogLine("reload rejected, keeping the running config")
                      .kv("err", fresh.error().message()));
    return tl::unexpected(fresh.error());
  }
  Config c = std::move(*fresh);
  if (auto ok = flags_(c); !ok) {
    platform::log(Level::err, "gridnoded",
                  LogLine("reload rejected, keeping the running config")
                      .kv("err", ok.error().message()));
    return tl::unexpected(ok.error());
  }
  // The web config is read again with agent.toml, and a bad one refuses the whole reload: the
  // endpoint keeps the TLS and users it has rather than serve with half a new configuration.
  std::optional<WebSecurity> web_security;
  if (web_) {
    auto s = make_web_security(c.web_config_file);
    if (!s) {
      platform::log(Level::err, "gridnoded",
                    LogLine("reload rejected, keeping the running config")
                        .kv("err", s.error().message()));
      return tl::unexpected(s.error());
    }
    web_security = std::move(*s);
  }
  platform::Log::set_threshold(c.log_level);
  sampler_->set_interval(c.interval);
  sampler_->set_sweep_timeout(c.sweep_timeout);
  socket_gid_ = resolve_socket_group(c);
  control_->set_group(socket_gid_, c.socket_group);
  std::vector<std::string> on_restart;
  for (auto [changed, key] : {std::pair{c.socket_path != config_.socket_path, "control.socket"},
                              std::pair{c.drivers != config_.drivers, "agent.drivers"},
                              std::pair{c.driver_sections != config_.driver_sections,
                                        "the drivers' sections"},
                              std::pair{c.roots.sysfs != config_.roots.sysfs ||
                                            c.roots.procfs != config_.roots.procfs ||
                                            c.roots.rootfs != config_.roots.rootfs,
                                        "paths"},
                              std::pair{c.socket_mode != config_.socket_mode, "control.mode"},
                              std::pair{c.upstream_endpoints != config_.upstream_endpoints ||
                                            c.upstream_ca != config_.upstream_ca ||
                                            c.upstream_pin != config_.upstream_pin,
                                        "upstream"},
                              std::pair{c.spool_max_bytes != config_.spool_max_bytes ||
                                            c.spool_fsync_interval != config_.spool_fsync_interval,
                                        "spool"},
                              std::pair{c.policy_file != config_.policy_file ||
                                            c.policy_bundle_dir != config_.policy_bundle_dir ||
                                            c.policy_key != config_.policy_key,
                                        "policy"},
                              std::pair{c.web_listen != config_.web_listen ||
                                            c.web_max_requests != config_.web_max_requests,
                                        "web.listen_addresses"},
                              std::pair{c.node_labels != config_.node_labels ||
                                            c.node_id != config_.node_id,
                                        "node"}}) {
    if (changed) {
      platform::log(Level::notice, "gridnoded",
                    LogLine("reload: change takes effect on restart").kv("key", key));
      on_restart.emplace_back(key);
    }
  }
  c.socket_path = config_.socket_path;
  c.drivers = config_.drivers;
  c.driver_sections = config_.driver_sections;
  c.roots = config_.roots;
  c.socket_mode = config_.socket_mode;
  c.web_listen = config_.web_listen;
  c.web_max_requests = config_.web_max_requests;
  config_ = std::move(c);
  if (web_) {
    web_->apply(config_, std::move(*web_security));
  }
  platform::log(Level::notice, "gridnoded", LogLine("reloaded").kv("config", config_.source));
  return on_restart;
}

void Agent::answer(const nlohmann::json& request, const platform::PeerCredentials& peer,
                   ControlServer::Reply reply) {
  auto cmd = request.find("cmd");
  if (cmd == request.end() || *cmd != "reload") {
    reply(handle(request, peer));
    return;
  }
  // Not a read command: without an [access] section only root and the agent's own user (as
  // which systemd runs ExecReload=) may reload; a grant may name it.
  if (auto why = policy_->authorize("reload", peer, socket_gid_)) {
    reply({{"ok", false}, {"error", *why}});
    return;
  }
  platform::log(Level::notice, "gridnoded",
                LogLine("reload requested")
                    .kv("uid", static_cast<std::int64_t>(peer.uid))
                    .kv("pid", static_cast<std::int64_t>(peer.pid)));
  reload([reply = std::move(reply)](const platform::Result<Reloaded>& r) {
    if (!r) {
      reply({{"ok", false}, {"error", r.error().message()}});
      return;
    }
    reply({{"ok", true},
           {"reloaded",
            {{"config", r->config}, {"policy", r->policy}, {"on_restart", r->on_restart}}}});
  });
}


nlohmann::json Agent::handle(const nlohmann::json& request, const platform::PeerCredentials& peer) {
  auto cmd_it = request.find("cmd");
  if (cmd_it == request.end() || !cmd_it->is_string()) {
    return {{"ok", false}, {"error", "request has no \"cmd\" string"}};
  }
  const std::string& cmd = cmd_it->get_ref<const std::string&>();
  if (std::find(std::begin(kControlCommands), std::end(kControlCommands), cmd) !=
      std::end(kControlCommands)) {
    if (auto why = policy_->authorize(cmd, peer, socket_gid_)) {
      return {{"ok", false}, {"error", *why}};
    }
  }
  if (cmd == "policy") {
    nlohmann::json p = policy_->policy().to_json();
    p["status"] = policy_->status_json();
    return {{"ok", true}, {"policy", std::move(p)}};
  }
  if (cmd == "events") {
    std::optional<std::chrono::system_clock::time_point> since;
    if (auto it = request.find("since_seconds_ago"); it != request.end() && it->is_number()) {
      since = std::chrono::system_clock::now() -
              std::chrono::duration_cast<std::chrono::system_clock::duration>(
                  std::chrono::duration<double>(it->get<double>()));
    }
    return {{"ok", true},
            {"events", policy_->events().to_json(since)},
            {"device_events", device_events_.to_json(since)},
            {"counts", policy_->events().counts_json()}};
  }
  if (cmd == "status") {
    auto status = Exposition::status_json(*sampler_, started_, config_.source);
    status["report"] = reporter_ ? reporter_->status_json() : nlohmann::json{{"enrolled", false}};
    status["policy"] = policy_->status_json();
    status["uplink"] = uplink_ ? uplink_->status_json() : nlohmann::json{{"configured", false}};
    if (spool_) {
      SpoolStats st = spool_->stats();
      status["spool"] = {{"reports", st.reports},
                         {"bytes", st.bytes},
                         {"unacked", st.unacked},
                         {"unacked_bytes", st.unacked_bytes},
                         {"acked_seq", st.acked_seq},
                         {"newest_seq", st.newest_seq},
                         {"gaps_created", st.gaps_created},
                         {"reports_dropped", st.reports_dropped},
                         {"append_failures", spool_failures_}};
    }
    return {{"ok", true}, {"status", std::move(status)}};
  }
  if (cmd == "sensors") {
    return {{"ok", true}, {"sensors", Exposition::sensors_json(*sampler_)}};
  }
  if (cmd == "gpus") {
    return {{"ok", true}, {"gpus", Exposition::gpus_json(*sampler_)}};
  }
  if (cmd == "samples") {
    return {{"ok", true}, {"samples", Exposition::samples_json(*sampler_)}};
  }
  if (cmd == "metrics") {
    render_metrics(nullptr, text_);
    return {{"ok", true}, {"text", text_}};
  }
  return {{"ok", false},
          {"error", "unknown command \"" + cmd +
                        "\" (known: status, sensors, gpus, samples, metrics, events, policy, reload)"}};
}

}  // namespace gridnode::agent
