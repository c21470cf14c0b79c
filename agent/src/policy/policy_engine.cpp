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

namespace gridnode::agent {

using platform::Level;
using platform::LogLine;

namespace {

std::string bundle_keep_path(const std::string& state_dir) {
  return platform::Roots::join(state_dir, "policy.bundle");
}

constexpr std::string_view kCapsFile = "power-caps.json";

std::string watts(std::uint32_t mw) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f W", mw / 1000.0);
  return buf;
}

// "GPU 1 (GPU-…)", as the nvml driver names a GPU in its messages.
std::string gpu_name(std::uint32_t gpu, const std::string& uuid) {
  return "GPU " + std::to_string(gpu) + " (" + uuid + ")";
}

std::optional<std::uint32_t> index_of(const std::vector<std::string>& uuids,
                                      const std::string& uuid) {
  auto it = std::find(uuids.begin(), uuids.end(), uuid);
  if (it == uuids.end()) {
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(it - uuids.begin());
}

// A field of a power-caps.json entry that must be an unsigned number below `bound`.
std::optional<std::uint32_t> record_number(const nlohmann::json& v, const char* key,
                                           std::uint64_t bound) {
  if (!v.contains(key) || !v[key].is_number_unsigned() || v[key].get<std::uint64_t>() >= bound) {
    return std::nullopt;
  }
  return v[key].get<std::uint32_t>();
}

std::string fmt_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

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
  // Limits a cap_power set before the agent last stopped, by GPU UUID (see CapRecord). A
  // broken file is logged and ignored (the GPUs keep their limits). The previous version keyed
  // them by GPU index ({"1": {"original_mw": 700000, "rule": "gpu-hot"}}): such entries are
  // converted once the GPUs are known.
  if (std::string text; !options_.state_dir.empty() &&
                        platform::read_file(caps_path(), text, 64 << 10)) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) {
      platform::log(Level::warning, "policy",
                    LogLine("cap_power: unreadable record ignored").kv("path", caps_path()));
    } else {
      for (const auto& [k, v] : j.items()) {
        auto original =
            v.is_object() ? record_number(v, "original_mw", UINT32_MAX + 1ull) : std::nullopt;
        if (!original || *original == 0 || k.empty() || k.size() > 96) {
          continue;
        }
        CapRecord r;
        r.original_mw = *original;
        r.rule = v.contains("rule") && v["rule"].is_string() ? v["rule"].get<std::string>() : "";
        if (auto gpu = platform::parse_uint64(k)) {
          if (*gpu < 1024) {
            r.gpu = static_cast<std::uint32_t>(*gpu);
            index_caps_[r.gpu] = r;
          }
          continue;
        }
        r.gpu = record_number(v, "gpu", 1024).value_or(0);
        caps_on_disk_[k] = r;
      }
      restore_pending_ = !caps_on_disk_.empty() || !index_caps_.empty();
      if (!index_caps_.empty()) {
        platform::log(Level::notice, "policy",
                      LogLine("cap_power: record by GPU index (previous version), converted to "
                              "GPU UUIDs once the GPUs are found")
                          .kv("path", caps_path()));
      }
    }
  }
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

void PolicyEngine::arm_bundles() {
  bundle_timer_.expires_after(options_.bundle_interval);
  bundle_timer_.async_wait([this](const std::error_code& ec) {
    if (ec) {
      return;
    }
    do_scan_bundles();
    arm_bundles();
  });
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

// ---- limits and intrusion

void PolicyEngine::on_round(const Sampler& sampler) {
  evaluate(sampler.slots(), std::chrono::steady_clock::now());
}

void PolicyEngine::evaluate(const std::vector<DriverSlot>& slots,
                            std::chrono::steady_clock::time_point now) {
  transitions_.clear();
  limits_.evaluate(slots, now, transitions_);
  if (policy_.accelerator.enabled &&
      (options_.accelerator == nullptr || !options_.accelerator->lists_processes())) {
    take_processes(slots);
  }
  for (const auto& t : transitions_) {
    on_limit(t);
  }
  restore_recorded_caps();
}

void PolicyEngine::on_limit(const LimitTransition& t) {
  const LimitRule& rule = limits_.rules()[t.rule];
  PolicyEvent e;
  e.rule = rule.name;
  e.type = rule.type;
  e.severity = t.fired ? rule.severity : Severity::info;
  e.subject = t.subject;
  if (rule.type == "intrusion") {
    e.details = t.fired ? "chassis intrusion alarm" : "chassis intrusion alarm cleared";
  } else {
    e.details = t.fired ? "value " + fmt_value(t.value) + (rule.above ? " above " : " below ") +
                              fmt_value(rule.threshold)
                        : "value " + fmt_value(t.value) + " back within " + fmt_value(rule.clear);
  }
  e.action = rule.action == LimitAction::cap_power ? "cap_power" : "report";
  e.result = t.fired ? "reported" : "cleared";
  if (rule.action == LimitAction::cap_power) {
    e.result = t.fired ? "capping power" : "restoring power";
    raise(std::move(e));
    cap_power(rule, t);
    return;
  }
  raise(std::move(e));
}

void PolicyEngine::cap_power(const LimitRule& rule, const LimitTransition& t) {
  std::string uuid;
  for (const auto& [k, v] : t.labels) {
    if (k == "UUID") {
      uuid = v;
    }
  }
  PolicyEvent e;
  e.rule = rule.name;
  e.type = rule.type;
  e.severity = t.fired ? rule.severity : Severity::info;
  e.subject = t.subject;
  e.action = "cap_power";
  if (uuid.empty() || options_.accelerator == nullptr) {
    e.details = t.fired ? "cannot cap power" : "cannot restore power";
    e.result = uuid.empty()
                   ? "failed: the series has no UUID label"
                   : "failed: power limits cannot be set on this host (no accelerator control)";
    raise(std::move(e));
    return;
  }
  // Every rule (and series) capping this GPU holds its cap; the lowest applies.
  auto& holds = cap_holds_[uuid];
  const CapHolder holder{rule.name, t.subject};
  if (t.fired) {
    holds[holder] = rule.power_limit_mw;
  } else if (holds.erase(holder) == 0) {
    if (holds.empty()) {
      cap_holds_.erase(uuid);
    }
    return;  // it holds no cap: it never capped, or its cap failed
  }
  std::optional<std::uint32_t> target;  // none: the original comes back
  std::string target_rule;
  for (const auto& [h, mw] : holds) {
    if (!target || mw < *target) {
      target = mw;
      target_rule = h.first;
    }
  }
  if (holds.empty()) {
    cap_holds_.erase(uuid);
  }
  asio::post(work_pool_, [this, e = std::move(e), uuid, fired = t.fired, target, target_rule,
                          holder]() mutable {
    AcceleratorControl& accel = *options_.accelerator;
    using State = CapRecord::State;
    std::uint32_t gpu = 0;
    std::uint32_t was = 0;
    std::uint32_t now = 0;
    platform::Result<void> r;
    if (auto uuids = gpu_uuids(); !uuids) {
      r = tl::unexpected(uuids.error());
    } else if (auto i = index_of(*uuids, uuid); !i) {
      r = platform::fail(std::errc::no_such_device,
                         uuid + ": no such GPU now (" + std::to_string(uuids->size()) + " found)");
    } else {
      gpu = *i;
    }
    if (r && target) {
      auto it = caps_on_disk_.find(uuid);
      const bool fresh = it == caps_on_disk_.end();
      const bool took_over = !fresh && it->second.state != State::capped;
      if (fresh) {
        // The original is recorded before the limit changes, so that a crash in between still
        // restores it; later caps never overwrite it.
        auto cur = accel.power_limit_mw(gpu);
        if (cur) {
          it = caps_on_disk_.emplace(uuid, CapRecord{*cur, e.rule, gpu, State::capped, *cur}).first;
          write_caps();
        } else {
          r = tl::unexpected(cur.error());
        }
      } else if (took_over) {
        // Capped before a restart and not restored yet: the limit in force is our own cap, the
        // original is the recorded one. This cap takes the restore over (unless it fails).
        it->second.state = State::capped;
        it->second.in_force_mw = 0;
      }
      if (r) {
        CapRecord& rec = it->second;
        was = rec.in_force_mw != 0 ? rec.in_force_mw : rec.original_mw;
        // A cap only ever lowers: a GPU the operator had set below it stays where it was.
        now = std::min(*target, rec.original_mw);
        if (rec.in_force_mw != now) {
          r = accel.set_power_limit_mw(gpu, now);
        }
        if (r) {
          rec.in_force_mw = now;
        } else if (fresh) {
          caps_on_disk_.erase(it);
          write_caps();
        } else if (took_over) {
          rec.state = State::recorded;
        }
      }
    } else if (r) {
      auto it = caps_on_disk_.find(uuid);
      if (it == caps_on_disk_.end() || it->second.state != State::capped) {
        return;  // no cap of ours is in force
      }
      now = it->second.original_mw;
      r = accel.set_power_limit_mw(gpu, now);
      if (r) {
        caps_on_disk_.erase(it);
        write_caps();
      }
    }
    asio::post(io_, [this, e = std::move(e), r, uuid, gpu, fired, target, target_rule, holder, was,
                     now]() mutable {
      if (!r) {
        e.details = fired ? "cannot cap power" : "cannot restore power";
        e.result = "failed: " + r.error().message();
        if (auto it = cap_holds_.find(uuid); fired && it != cap_holds_.end()) {
          it->second.erase(holder);  // it holds nothing
          if (it->second.empty()) {
            cap_holds_.erase(it);
          }
        }
        restore_pending_ = true;  // a record its cap took over is to be restored again
      } else if (!target) {
        e.details = "GPU " + std::to_string(gpu) + " power limit restored";
        e.result = "power limit " + watts(now);
      } else {
        const bool other = target_rule != e.rule;  // the lowest cap is another rule's
        std::string change = "unchanged";
        if (now != was) {
          change = now < was ? "lowered" : "raised";
        }
        e.details = "GPU " + std::to_string(gpu) + " power limit " + change +
                    (now < *target ? ", already below the cap"
                     : other       ? ", rule " + target_rule + "'s cap applies"
                                   : "");
        e.result = "power limit " + watts(now) +
                   (other && now == *target ? " (" + target_rule + ")" : "") +
                   (now != was ? ", was " + watts(was) : "");
      }
      raise(std::move(e));
    });
  });
}

platform::Result<std::vector<std::string>> PolicyEngine::gpu_uuids() {
  auto uuids = options_.accelerator->gpu_uuids();
  if (!uuids || index_caps_.empty()) {
    return uuids;
  }
  // The record of the previous version names GPUs by index: this run's first answer says whose
  // they are. (Right unless a reboot renumbered them in between; then the limits were reset.)
  std::string converted;
  for (const auto& [gpu, r] : index_caps_) {
    if (gpu < uuids->size() && !(*uuids)[gpu].empty()) {
      caps_on_disk_.emplace((*uuids)[gpu], r);
      converted += (converted.empty() ? "" : ",") + std::to_string(gpu) + "=" + (*uuids)[gpu];
      continue;
    }
    PolicyEvent e;
    e.rule = r.rule.empty() ? "limit" : r.rule;
    e.type = "limit";
    e.severity = Severity::warning;
    e.subject = "GPU " + std::to_string(gpu);
    e.action = "cap_power";
    e.details =
        "cannot restore power (capped when the agent last stopped): the record names "
        "the GPU by index only, and there is no such GPU now; the record is dropped";
    e.result =
        "failed: no GPU " + std::to_string(gpu) + " (" + std::to_string(uuids->size()) + " found)";
    cap_notices_.push_back(std::move(e));
  }
  index_caps_.clear();
  platform::log(Level::notice, "policy",
                LogLine("cap_power: record converted from GPU indices to UUIDs")
                    .kv("path", caps_path())
                    .kv("gpus", converted));
  write_caps();
  return uuids;
}

std::string PolicyEngine::caps_path() const {
  return platform::Roots::join(options_.state_dir, std::string(kCapsFile));
}

void PolicyEngine::write_caps() {
  if (options_.state_dir.empty()) {
    return;
  }
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [uuid, r] : caps_on_disk_) {
    j[uuid] = {{"gpu", r.gpu}, {"original_mw", r.original_mw}, {"rule", r.rule}};
  }
  for (const auto& [gpu, r] : index_caps_) {  // not converted yet: as they were
    j[std::to_string(gpu)] = {{"original_mw", r.original_mw}, {"rule", r.rule}};
  }
  // The state dir exists once the node is enrolled (or systemd's StateDirectory= made it); an
  // agent that is not enrolled yet may still cap.
  if (::mkdir(options_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    platform::log(Level::warning, "policy",
                  LogLine("cap_power: cannot create the state dir")
                      .kv("path", options_.state_dir)
                      .kv("err", std::strerror(errno)));
  }
  if (auto w = platform::write_file_atomic(caps_path(), j.dump() + "\n", 0600); !w) {
    // The cap still applies; only a restart while capped would not restore it.
    platform::log(Level::warning, "policy",
                  LogLine("cap_power: cannot record the original limit")
                      .kv("err", w.error().message()));
  }
}

// Limits capped before a restart go back to what they were; a rule that still holds caps
// them again after its `for`. Retried after each round while the accelerator driver has not
// found its GPUs yet; any other failure is an event, and the record stays for the next start.
// A recorded GPU is found by its UUID, whatever its index now; one that is not there is an
// event, and its record stays too (it may be back after the next reboot).
void PolicyEngine::restore_recorded_caps() {
  if (restoring_ || !restore_pending_ || options_.accelerator == nullptr) {
    return;
  }
  restoring_ = true;
  asio::post(work_pool_, [this] {
    using State = CapRecord::State;
    std::vector<PolicyEvent> done;
    bool again = false;
    bool changed = false;
    auto uuids = gpu_uuids();
    for (auto it = caps_on_disk_.begin(); it != caps_on_disk_.end();) {
      const std::string& uuid = it->first;
      CapRecord& rec = it->second;
      if (rec.state != State::recorded) {
        ++it;
        continue;
      }
      std::uint32_t gpu = 0;
      bool present = false;
      platform::Result<void> r;
      if (!uuids) {
        r = tl::unexpected(uuids.error());
      } else if (auto i = index_of(*uuids, uuid); !i) {
        r = platform::fail(std::errc::no_such_device,
                           uuid + ": no such GPU now (" + std::to_string(uuids->size()) +
                               " found; it was GPU " + std::to_string(rec.gpu) + ")");
      } else {
        gpu = *i;
        present = true;
        r = options_.accelerator->set_power_limit_mw(gpu, rec.original_mw);
      }
      if (!r && r.error().code == std::errc::resource_unavailable_try_again) {
        again = true;  // after the next round
        ++it;
        continue;
      }
      PolicyEvent e;
      e.rule = rec.rule.empty() ? "limit" : rec.rule;
      e.type = "limit";
      e.subject = present ? gpu_name(gpu, uuid) : uuid;
      e.action = "cap_power";
      if (r) {
        e.severity = Severity::info;
        e.details = "GPU " + std::to_string(gpu) +
                    " power limit restored (capped when the agent last stopped)";
        e.result = "power limit " + watts(rec.original_mw);
        it = caps_on_disk_.erase(it);
        changed = true;
      } else {
        rec.state = State::kept;
        e.severity = Severity::warning;
        e.details = uuids && !present
                        ? "cannot restore power (capped when the agent last stopped): "
                          "the GPU is not present, its record is kept"
                        : "cannot restore power (capped when the agent last stopped)";
        e.result = "failed: " + r.error().message();
        ++it;
      }
      done.push_back(std::move(e));
    }
    if (changed) {
      write_caps();
    }
    done.insert(done.begin(), std::make_move_iterator(cap_notices_.begin()),
                std::make_move_iterator(cap_notices_.end()));
    cap_notices_.clear();
    again = again || !index_caps_.empty();
    asio::post(io_, [this, done = std::move(done), again]() mutable {
      restoring_ = false;
      restore_pending_ = again;
      for (auto& e : done) {
        raise(std::move(e));
      }
    });
  });
}

// ---- local access

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

// ---- network

void PolicyEngine::do_network() {
  if (network_busy_ || !policy_.network.enabled) {
    return;
  }
  network_busy_ = true;
  std::set<std::string> known = reported_listeners_;
  asio::post(work_pool_, [this, gen = generation_, known = std::move(known),
                          rule = policy_.network, roots = options_.roots] {
    auto ls = read_listeners(roots);
    std::map<std::uint64_t, SocketOwner> owners;
    if (ls) {
      std::set<std::uint64_t> wanted;
      for (const auto& l : *ls) {
        if (!allowed(l, rule) && !known.contains(l.subject() + "#" + std::to_string(l.inode))) {
          wanted.insert(l.inode);
        }
      }
      if (!wanted.empty()) {
        owners = find_socket_owners(roots, wanted);
      }
    }
    asio::post(io_, [this, gen, ls = std::move(ls), owners = std::move(owners)]() mutable {
      on_listeners(gen, std::move(ls), std::move(owners));
    });
  });
}

void PolicyEngine::on_listeners(std::uint64_t generation,
                                platform::Result<std::vector<Listener>> listeners,
                                std::map<std::uint64_t, SocketOwner> owners) {
  network_busy_ = false;
  if (generation != generation_) {
    return;
  }
  if (!listeners) {
    platform::log(Level::warning, "policy",
                  LogLine("network rule: cannot read listeners").kv("err", listeners.error().message()));
    return;
  }
  std::set<std::string> now;
  for (const auto& l : *listeners) {
    if (allowed(l, policy_.network)) {
      continue;
    }
    std::string key = l.subject() + "#" + std::to_string(l.inode);
    now.insert(key);
    if (reported_listeners_.contains(key)) {
      continue;
    }
    PolicyEvent e;
    e.rule = "network";
    e.type = "network";
    e.severity = policy_.network.severity;
    e.subject = l.subject();
    e.details = "listener not allowed: port " + std::to_string(l.port);
    if (auto it = owners.find(l.inode); it != owners.end()) {
      e.details += " by pid " + std::to_string(it->second.pid) + " (" + it->second.comm + ")";
    } else {
      e.details += " by uid " + std::to_string(l.uid) + " (process not found)";
    }
    raise(std::move(e));
  }
  reported_listeners_ = std::move(now);  // a listener that went and came back is told again
}

// ---- accelerator use

// The nvml driver lists each GPU's compute processes as samples; without an AcceleratorControl
// the rule takes them from there.
void PolicyEngine::take_processes(const std::vector<DriverSlot>& slots) {
  sampled_procs_.clear();
  for (const auto& slot : slots) {
    const platform::Catalog* c = slot.front.catalog.get();
    if (c == nullptr || slot.state != DriverState::up) {
      continue;
    }
    for (const auto& r : slot.front.readings) {
      if (r.series >= c->series.size() ||
          c->family_of(r.series).name != "gridnode_gpu_process_memory_used_bytes") {
        continue;
      }
      AcceleratorProcess p;
      for (const auto& [k, v] : c->series[r.series].labels) {
        if (k == "pid") {
          p.pid = static_cast<pid_t>(platform::parse_uint64(v).value_or(0));
        } else if (k == "gpu") {
          p.gpu = static_cast<std::uint32_t>(platform::parse_uint64(v).value_or(0));
        } else if (k == "UUID") {
          p.uuid = v;
        }
      }
      p.used_memory_bytes = r.value.bits;
      if (p.pid > 0) {
        sampled_procs_.push_back(std::move(p));
      }
    }
  }
}

void PolicyEngine::do_accelerator() {
  if (accel_busy_ || !policy_.accelerator.enabled) {
    return;
  }
  accel_busy_ = true;
  asio::post(work_pool_, [this, gen = generation_, rule = policy_.accelerator,
                          roots = options_.roots, sampled = sampled_procs_] {
    using Found = std::vector<std::pair<AcceleratorProcess, ProcessInfo>>;
    platform::Result<Found> out = Found{};
    auto procs = options_.accelerator != nullptr && options_.accelerator->lists_processes()
                     ? options_.accelerator->list_processes()
                     : platform::Result<std::vector<AcceleratorProcess>>(sampled);
    if (!procs) {
      if (procs.error().code != std::errc::no_such_file_or_directory) {
        out = tl::unexpected(procs.error());
      }
    } else {
      for (const auto& p : *procs) {
        auto info = read_process(roots, p.pid);
        if (info && !allowed(*info, rule)) {
          out->emplace_back(p, *info);
        }
      }
    }
    asio::post(io_, [this, gen, out = std::move(out)]() mutable {
      on_accelerator_processes(gen, std::move(out));
    });
  });
}

PolicyEvent PolicyEngine::accelerator_event(const AcceleratorProcess& ap,
                                            const ProcessInfo& info) const {
  PolicyEvent e;
  e.rule = "accelerator";
  e.type = "accelerator";
  e.severity = policy_.accelerator.severity;
  e.subject = "pid " + std::to_string(info.pid) + " (" + info.comm + ")";
  e.details = "user " + info.user + " (uid " + std::to_string(info.uid) + ", cgroup " +
              (info.cgroup.empty() ? "?" : info.cgroup) + ") runs on GPU " +
              std::to_string(ap.gpu) + " without being allowed";
  return e;
}

void PolicyEngine::on_accelerator_processes(
    std::uint64_t generation,
    platform::Result<std::vector<std::pair<AcceleratorProcess, ProcessInfo>>> procs) {
  accel_busy_ = false;
  if (generation != generation_) {
    return;
  }
  if (!procs) {
    platform::log(Level::warning, "policy",
                  LogLine("accelerator rule: cannot list processes").kv("err", procs.error().message()));
    return;
  }
  std::set<std::pair<pid_t, std::uint64_t>> now;
  for (const auto& [ap, info] : *procs) {
    auto key = std::pair{info.pid, info.start_time};
    now.insert(key);
    if (reported_procs_.contains(key)) {
      continue;
    }
    if (policy_.accelerator.action == AcceleratorAction::terminate) {
      terminate(ap, info);
      continue;
    }
    raise(accelerator_event(ap, info));
  }
  reported_procs_ = std::move(now);
}

void PolicyEngine::terminate(const AcceleratorProcess& ap, const ProcessInfo& info) {
  PolicyEvent e = accelerator_event(ap, info);
  e.action = "terminate";
  const auto grace = policy_.accelerator.grace;
  asio::post(work_pool_, [this, e = std::move(e), info, grace, roots = options_.roots]() mutable {
    auto r = signal_process(roots, info.pid, info.start_time, SIGTERM);
    asio::post(io_, [this, e = std::move(e), r, info, grace, roots]() mutable {
      e.result = r ? "SIGTERM sent" : "failed: " + r.error().message();
      PolicyEvent after = e;
      raise(std::move(e));
      if (!r) {
        return;
      }
      auto timer = std::make_shared<asio::steady_timer>(io_, grace);
      timer->async_wait([this, timer, after = std::move(after), info, grace,
                         roots](const std::error_code& ec) mutable {
        if (ec) {
          return;
        }
        asio::post(work_pool_, [this, after = std::move(after), info, grace, roots]() mutable {
          std::string result;
          if (!process_alive(roots, info.pid, info.start_time)) {
            result = "terminated: exited after SIGTERM";
          } else if (auto k = signal_process(roots, info.pid, info.start_time, SIGKILL); k) {
            result = "killed: SIGKILL after " +
                     fmt_value(std::chrono::duration<double>(grace).count()) + " s grace";
          } else {
            result = "failed: SIGKILL: " + k.error().message();
          }
          asio::post(io_, [this, after = std::move(after), result]() mutable {
            after.result = result;
            after.details = "terminated a process that ran on an accelerator without being allowed";
            raise(std::move(after));
          });
        });
      });
    });
  });
}

// ---- integrity

void PolicyEngine::do_integrity_full() {
  if (!checker_) {
    return;
  }
  if (hashing_) {
    full_wanted_ = true;
    return;
  }
  hashing_ = true;
  full_wanted_ = false;
  cancel_ = false;
  asio::post(hash_pool_, [this, checker = checker_, gen = generation_] {
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t before = checker->bytes_hashed();
    auto findings = checker->check_all(cancel_);
    auto bytes = checker->bytes_hashed() - before;
    auto took = std::chrono::steady_clock::now() - t0;
    asio::post(io_, [this, gen, findings = std::move(findings), bytes, took]() mutable {
      on_integrity(gen, std::move(findings), bytes, took);
    });
  });
}

void PolicyEngine::do_integrity_paths() {
  if (!checker_ || changed_paths_.empty()) {
    return;
  }
  if (hashing_) {
    return;  // picked up when the pass in progress ends
  }
  hashing_ = true;
  cancel_ = false;
  std::set<std::string> paths;
  paths.swap(changed_paths_);
  asio::post(hash_pool_, [this, checker = checker_, gen = generation_, paths = std::move(paths)] {
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t before = checker->bytes_hashed();
    auto findings = checker->check_paths(paths, cancel_);
    auto bytes = checker->bytes_hashed() - before;
    auto took = std::chrono::steady_clock::now() - t0;
    asio::post(io_, [this, gen, findings = std::move(findings), bytes, took]() mutable {
      on_integrity(gen, std::move(findings), bytes, took);
    });
  });
}

void PolicyEngine::on_integrity(std::uint64_t generation, std::vector<IntegrityFinding> findings,
                                std::uint64_t bytes, std::chrono::nanoseconds took) {
  hashing_ = false;
  bytes_hashed_ += bytes;
  last_pass_ = took;
  if (generation == generation_ && !stopped_) {
    for (auto& f : findings) {
      PolicyEvent e;
      e.rule = "integrity";
      e.type = "integrity";
      e.severity = f.restored() ? Severity::info : policy_.integrity.severity;
      e.subject = f.path;
      e.details = f.what + ": " + f.details;
      raise(std::move(e));
    }
  }
  if (stopped_) {
    return;
  }
  if (full_wanted_) {
    do_integrity_full();
  } else if (!changed_paths_.empty()) {
    do_integrity_paths();
  }
}

void PolicyEngine::start_inotify() {
  if (inotify_) {
    std::error_code ignored;
    inotify_->close(ignored);
    inotify_.reset();
  }
  watch_dirs_.clear();
  if (!checker_) {
    return;
  }
  // Walking the watched trees is blocking I/O: on the worker; the watches are added there too
  // and the descriptor comes back to the loop.
  asio::post(work_pool_, [this, gen = generation_, checker = checker_] {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int err = errno;
    std::map<int, std::string> dirs;
    if (fd >= 0) {
      for (const auto& dir : checker->watch_dirs()) {
        int wd = ::inotify_add_watch(fd, dir.c_str(),
                                     IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                         IN_DELETE | IN_ATTRIB | IN_DONT_FOLLOW);
        if (wd >= 0) {
          dirs[wd] = dir;
        }
      }
    }
    asio::post(io_, [this, gen, fd, err, dirs = std::move(dirs)]() mutable {
      if (fd < 0) {
        platform::log(Level::warning, "policy",
                      LogLine("integrity: no inotify, periodic checks only")
                          .kv("err", std::error_code(err, std::generic_category()).message()));
        return;
      }
      if (gen != generation_ || stopped_) {
        ::close(fd);  // a newer policy has its own
        return;
      }
      watch_dirs_ = std::move(dirs);
      inotify_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
      do_read_inotify();
    });
  });
}

void PolicyEngine::do_read_inotify() {
  inotify_->async_read_some(
      asio::buffer(inotify_buf_), [this](const std::error_code& ec, std::size_t n) {
        if (ec) {
          return;  // closed: stopping or a new policy
        }
        std::size_t at = 0;
        while (at + sizeof(inotify_event) <= n) {
          inotify_event ev;
          std::memcpy(&ev, inotify_buf_.data() + at, sizeof ev);
          std::string name(inotify_buf_.data() + at + sizeof ev,
                           strnlen(inotify_buf_.data() + at + sizeof ev, ev.len));
          at += sizeof ev + ev.len;
          auto it = watch_dirs_.find(ev.wd);
          if (it != watch_dirs_.end() && !name.empty()) {
            changed_paths_.insert(platform::Roots::join(it->second, name));
          }
        }
        if (!changed_paths_.empty() && !debounce_armed_) {
          // A copy of a large file writes many times: wait for the writes to settle.
          debounce_armed_ = true;
          debounce_timer_.expires_after(std::chrono::milliseconds(200));
          debounce_timer_.async_wait([this](const std::error_code& e) {
            debounce_armed_ = false;
            if (!e) {
              do_integrity_paths();
            }
          });
        }
        do_read_inotify();
      });
}

// ---- bundles

void PolicyEngine::offer_bundle(std::string bytes, std::string origin, BundleAnswer answer) {
  asio::post(work_pool_, [this, bytes = std::move(bytes), origin = std::move(origin),
                          answer = std::move(answer)]() mutable {
    platform::Result<Policy> p =
        key_ ? verify_bundle(bytes, *key_, origin)
             : platform::Result<Policy>(platform::fail(
                   std::errc::operation_not_permitted,
                   origin + ": no policy key is configured ([policy] key): bundles are refused"));
    asio::post(io_, [this, origin, p = std::move(p), bytes = std::move(bytes),
                     answer = std::move(answer)]() mutable {
      on_bundle(origin, std::move(p), std::move(bytes), answer);
    });
  });
}

void PolicyEngine::do_scan_bundles() {
  if (scanning_ || options_.bundle_dir.empty()) {
    return;
  }
  scanning_ = true;
  asio::post(work_pool_, [this] {
    std::vector<std::pair<std::string, std::string>> fresh;
    if (auto names = platform::list_dir(options_.bundle_dir)) {
      for (const auto& n : *names) {
        if (!n.ends_with(".bundle") || n.starts_with(".")) {
          continue;  // hidden: a copy still being written
        }
        std::string path = platform::Roots::join(options_.bundle_dir, n);
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
          continue;
        }
        auto sig = std::pair<std::int64_t, std::int64_t>{
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
            static_cast<std::int64_t>(st.st_size)};
        auto it = bundle_seen_.find(path);
        if (it != bundle_seen_.end() && it->second == sig) {
          continue;
        }
        bundle_seen_[path] = sig;
        std::string bytes;
        if (platform::read_file(path, bytes, kMaxBundleBytes + 1)) {
          fresh.emplace_back(path, std::move(bytes));
        }
      }
    }
    asio::post(io_, [this, fresh = std::move(fresh)]() mutable {
      scanning_ = false;
      for (auto& [path, bytes] : fresh) {
        offer_bundle(std::move(bytes), path);
      }
    });
  });
}

void PolicyEngine::on_bundle(std::string origin, platform::Result<Policy> p, std::string bytes,
                             const BundleAnswer& answer) {
  if (stopped_) {
    return;
  }
  auto refuse = [&](const platform::Error& error) {
    on_policy_rejected(origin, error);
    if (answer) {
      answer({BundleOutcome::Result::refused, error.message()});
    }
  };
  if (!p) {
    refuse(p.error());
    return;
  }
  switch (decide_bundle(policy_, *p)) {
    case BundleDecision::same:
      if (answer) {
        answer({BundleOutcome::Result::in_force, "already in force"});
      }
      return;
    case BundleDecision::rollback:
      refuse(platform::Error{std::make_error_code(std::errc::operation_not_permitted),
                             "version " + std::to_string(p->version) +
                                 " is not newer than version " + std::to_string(policy_.version) +
                                 " in force (rollback)"});
      return;
    case BundleDecision::apply:
      break;
  }
  p->source = origin.starts_with("uplink ") ? origin : "bundle " + origin;
  PolicyEvent e;
  e.rule = "policy";
  e.type = "policy";
  e.severity = Severity::notice;
  e.subject = origin;
  e.details = "signed policy version " + std::to_string(p->version) + " applied (was " +
              std::to_string(policy_.version) + ")";
  e.result = "applied";
  apply(std::move(*p));
  raise(std::move(e));
  if (answer) {
    answer({BundleOutcome::Result::applied, {}});
  }
  if (!options_.state_dir.empty()) {
    // Kept so that a restart does not fall back to an older policy.
    asio::post(work_pool_, [this, bytes = std::move(bytes)] {
      std::error_code ec;
      std::filesystem::create_directories(options_.state_dir, ec);  // unenrolled: may not exist
      auto w = platform::write_file_atomic(bundle_keep_path(options_.state_dir), bytes, 0600);
      if (!w) {
        platform::log(Level::warning, "policy",
                      LogLine("cannot keep the bundle").kv("err", w.error().message()));
      }
    });
  }
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
