// Power caps: the cap_power action's arbitration between the rules that hold a GPU, and the
// caps file (<state_dir>/power-caps.json) that restores the original limits after a restart.
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

namespace {

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

}  // namespace

void PolicyEngine::load_recorded_caps() {
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

}  // namespace gridnode::agent
