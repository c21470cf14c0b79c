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

namespace gridnode::agent {

using platform::Level;
using platform::LogLine;

using namespace policy_text;  // NOLINT: the policy's own helpers

PolicyEngine::PolicyEngine(asio::io_context& io, Options options)
    : io_(io),
      options_(std::move(options)),
      policy_(default_policy()),
      network_timer_(io),
      accel_timer_(io),
      integrity_timer_(io),
      debounce_timer_(io),
      bundle_timer_(io) {}

PolicyEngine::~PolicyEngine() { stop(); }

void PolicyEngine::raise(PolicyEvent e) { events_.record(std::move(e), std::chrono::steady_clock::now()); }

void PolicyEngine::on_policy_rejected(const std::string& what, const platform::Error& error) {
  PolicyEvent e;
  e.rule = "policy";
  e.type = "policy";
  e.severity = Severity::err;
  e.subject = what;
  e.details = "rejected, keeping the policy in force (" + policy_.source + "): " + error.message();
  e.result = "rejected";
  raise(std::move(e));
}

void PolicyEngine::load() {
  load_recorded_caps();
  if (!options_.policy_key.empty()) {
    std::string pem;
    auto r = platform::read_file(options_.policy_key, pem, 64 << 10);
    auto key = r ? crypto::PublicKey::from_pem(pem)
                 : platform::Result<crypto::PublicKey>(tl::unexpected(r.error()));
    if (key) {
      key_ = *key;
    } else {
      on_policy_rejected(options_.policy_key, key.error());
    }
  }
  // The last good bundle outranks the local file: the grid signed it.
  if (key_ && !options_.state_dir.empty()) {
    std::string bytes;
    const std::string kept = bundle_keep_path(options_.state_dir);
    if (platform::read_file(kept, bytes, kMaxBundleBytes)) {
      auto p = verify_bundle(bytes, *key_, kept);
      if (p) {
        p->source = "bundle " + kept;
        apply(std::move(*p));
        return;
      }
      on_policy_rejected(kept, p.error());
    }
  }
  if (options_.policy_file.empty()) {
    apply(default_policy());
    return;
  }
  auto p = read_policy(options_.policy_file);
  if (p) {
    apply(std::move(*p));
    return;
  }
  if (p.error().code == std::errc::no_such_file_or_directory && !options_.policy_file_required) {
    apply(default_policy());
    return;
  }
  apply(default_policy());
  on_policy_rejected(options_.policy_file, p.error());
}

void PolicyEngine::apply(Policy policy) {
  ++generation_;
  policy_ = std::move(policy);
  // Group names are resolved once per policy, not per request (NSS may be slow).
  access_gids_.clear();
  for (const auto& g : policy_.access) {
    auto gid = platform::resolve_group(g.group);
    access_gids_.push_back(gid ? std::optional<gid_t>(*gid) : std::nullopt);
    if (!gid) {
      platform::log(Level::warning, "policy",
                    LogLine("access: unknown group, its grant is ignored").kv("group", g.group));
    }
  }
  events_.set_limits(policy_.events);
  // A rule the reload removed or changed lets go of its caps now; an unchanged one keeps its
  // state, and clears (and restores) when its condition does.
  std::vector<std::pair<LimitRule, LimitTransition>> released;
  limits_.set_rules(policy_.limits, &released);
  for (const auto& [rule, t] : released) {
    if (rule.action == LimitAction::cap_power) {
      cap_power(rule, t);
    }
  }
  reported_listeners_.clear();
  cancel_ = true;  // a pass of the old policy stops at its next chunk
  checker_ = policy_.integrity.watch.empty()
                 ? nullptr
                 : std::make_shared<IntegrityChecker>(policy_.integrity);
  changed_paths_.clear();
  platform::log(Level::notice, "policy",
                LogLine("in force")
                    .kv("source", policy_.source)
                    .kv("version", static_cast<std::int64_t>(policy_.version))
                    .kv("digest", crypto::to_hex(policy_.digest).substr(0, 16))
                    .kv("limits", static_cast<std::int64_t>(policy_.limits.size())));
  if (started_) {
    network_timer_.cancel();
    accel_timer_.cancel();
    integrity_timer_.cancel();
    start();
  }
  if (on_apply_) {
    on_apply_();
  }
}

void PolicyEngine::arm(asio::steady_timer& timer, std::chrono::nanoseconds interval,
                       void (PolicyEngine::*fn)()) {
  timer.expires_after(interval);
  timer.async_wait([this, &timer, interval, fn, gen = generation_](const std::error_code& ec) {
    if (ec || gen != generation_) {
      return;
    }
    (this->*fn)();
    arm(timer, interval, fn);
  });
}

void PolicyEngine::start() {
  started_ = true;
  const std::uint64_t gen = generation_;
  if (policy_.network.enabled) {
    asio::post(io_, [this, gen] {
      if (gen == generation_) {
        do_network();
      }
    });
    arm(network_timer_, policy_.network.interval, &PolicyEngine::do_network);
  }
  if (policy_.accelerator.enabled) {
    asio::post(io_, [this, gen] {
      if (gen == generation_) {
        do_accelerator();
      }
    });
    arm(accel_timer_, policy_.accelerator.interval, &PolicyEngine::do_accelerator);
  }
  start_inotify();
  if (checker_) {
    asio::post(io_, [this, gen] {
      if (gen == generation_) {
        do_integrity_full();
      }
    });
    arm(integrity_timer_, policy_.integrity.interval, &PolicyEngine::do_integrity_full);
  }
  if (!options_.bundle_dir.empty() && !bundle_timer_armed_) {
    bundle_timer_armed_ = true;
    asio::post(io_, [this] { do_scan_bundles(); });
    arm_bundles();
  }
}

void PolicyEngine::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  cancel_ = true;
  network_timer_.cancel();
  accel_timer_.cancel();
  integrity_timer_.cancel();
  debounce_timer_.cancel();
  bundle_timer_.cancel();
  if (inotify_) {
    std::error_code ignored;
    inotify_->close(ignored);
    inotify_.reset();
  }
  hash_pool_.join();
  work_pool_.join();
}

void PolicyEngine::reload(ReloadDone done) {
  if (policy_.source.starts_with("bundle ") || policy_.source.starts_with("uplink ")) {
    platform::log(Level::notice, "policy",
                  LogLine("reload: a signed bundle is in force, the policy file is not read")
                      .kv("source", policy_.source));
    if (done) {
      done({});
    }
    return;
  }
  if (options_.policy_file.empty()) {
    if (done) {
      done({});
    }
    return;
  }
  asio::post(work_pool_, [this, path = options_.policy_file,
                          required = options_.policy_file_required, done = std::move(done)] {
    auto p = read_policy(path);
    asio::post(io_, [this, p = std::move(p), path, required, done = std::move(done)]() mutable {
      if (stopped_) {
        return;
      }
      platform::Result<void> outcome;
      if (p) {
        if (p->digest != policy_.digest || p->source != policy_.source) {
          apply(std::move(*p));
        }
      } else if (p.error().code == std::errc::no_such_file_or_directory && !required) {
        apply(default_policy());
      } else {
        on_policy_rejected(path, p.error());
        outcome = tl::unexpected(p.error());
      }
      if (done) {
        done(outcome);
      }
    });
  });
}

// ---- --once

void PolicyEngine::check_once(const Sampler& sampler) {
  on_round(sampler);
  if (policy_.network.enabled) {
    auto ls = read_listeners(options_.roots);
    std::map<std::uint64_t, SocketOwner> owners;
    if (ls) {
      std::set<std::uint64_t> wanted;
      for (const auto& l : *ls) {
        if (!allowed(l, policy_.network)) {
          wanted.insert(l.inode);
        }
      }
      owners = find_socket_owners(options_.roots, wanted);
    }
    on_listeners(generation_, std::move(ls), std::move(owners));
  }
  if (checker_) {
    cancel_ = false;
    auto findings = checker_->check_all(cancel_);
    on_integrity(generation_, std::move(findings), checker_->bytes_hashed(), {});
  }
}

nlohmann::json PolicyEngine::status_json() const {
  return {{"source", policy_.source},
          {"version", policy_.version},
          {"digest", crypto::to_hex(policy_.digest)},
          {"events_total", events_.total()},
          {"events_suppressed_total", events_.suppressed_total()},
          {"limit_series", limits_.bound_series()},
          {"limits_firing", limits_.firing()},
          {"integrity_bytes_hashed", bytes_hashed_},
          {"integrity_last_pass_seconds", std::chrono::duration<double>(last_pass_).count()},
          {"integrity_busy", hashing_}};
}

}  // namespace gridnode::agent
