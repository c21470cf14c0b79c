// Rule kind `limit`: thresholds on the sampled series, judged on the loop after each round.
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
#include "gridnode/drivers/ascend.hpp"
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

std::string series_subject(const std::string& metric, const platform::Labels& labels) {
  std::string s = metric + "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    s += (i ? "," : "") + labels[i].first + "=\"" + labels[i].second + "\"";
  }
  return s + "}";
}

bool matches(const platform::Labels& have, const platform::Labels& want) {
  return std::all_of(want.begin(), want.end(), [&](const auto& w) {
    return std::find(have.begin(), have.end(), w) != have.end();
  });
}

}  // namespace

Result<void> parse_limit_section(const PolicyParser& p, const toml::node& node, PolicyDraft& draft) {
  const std::string section = "limit";
  Policy& pol = draft.policy;
  auto& limit_names = draft.limit_names;
  Result<void> r;
  const auto* arr = node.as_array();
  if (arr == nullptr) {
    r = tl::unexpected(p.bad(node, "limit", "must be an array of tables ([[limit]])"));
  }
  for (std::size_t i = 0; r && arr != nullptr && i < arr->size(); ++i) {
    const toml::node& item = *arr->get(i);
    LimitRule l;
    bool has_above = false, has_below = false, has_clear = false;
    double power_watts = 0;
    r = p.table(item, "limit", {"name", "metric", "labels", "above", "below", "clear", "for", "severity", "action", "power_limit"},
                [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                  if (key == "name" || key == "metric" || key == "action") {
                    auto s = p.string(v, full);
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    if (key == "name") {
                      if (!limit_names.insert(*s).second) {
                        return tl::unexpected(p.bad(v, full, "\"" + *s + "\" names another limit already"));
                      }
                      l.name = *s;
                    } else if (key == "metric") {
                      l.metric = *s;
                    } else if (*s == "report") {
                      l.action = LimitAction::report;
                    } else if (*s == "cap_power") {
                      l.action = LimitAction::cap_power;
                    } else {
                      return tl::unexpected(p.bad(v, full, "must be report or cap_power"));
                    }
                  } else if (key == "labels") {
                    const auto* lt = v.as_table();
                    if (lt == nullptr) {
                      return tl::unexpected(p.bad(v, full, "must be a table of label = \"value\""));
                    }
                    for (const auto& [lk, lv] : *lt) {
                      auto s = p.string(lv, full + "." + std::string(lk.str()));
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      l.match.emplace_back(std::string(lk.str()), *s);
                    }
                    std::sort(l.match.begin(), l.match.end());
                  } else if (key == "above" || key == "below" || key == "clear") {
                    auto d = p.number(v, full);
                    if (!d) {
                      return tl::unexpected(d.error());
                    }
                    if (key == "clear") {
                      l.clear = *d;
                      has_clear = true;
                    } else {
                      l.above = key == "above";
                      l.threshold = *d;
                      (key == "above" ? has_above : has_below) = true;
                    }
                  } else if (key == "for") {
                    auto s = p.seconds(v, full, 0, 86400);
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    l.for_duration = *s;
                  } else if (key == "severity") {
                    auto s = p.severity(v, full);
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    l.severity = *s;
                  } else if (key == "power_limit") {
                    auto d = p.number(v, full);
                    if (!d || *d <= 0 || *d > 100000) {
                      return tl::unexpected(p.bad(v, full, "must be a number of watts above 0"));
                    }
                    power_watts = *d;
                  }
                  return {};
                });
    if (!r) {
      break;
    }
    if (l.name.empty() || l.metric.empty()) {
      r = tl::unexpected(p.bad(item, "limit", "needs a name and a metric"));
    } else if (has_above == has_below) {
      r = tl::unexpected(p.bad(item, "limit." + l.name, "needs exactly one of above or below"));
    } else if (has_clear && (l.above ? l.clear > l.threshold : l.clear < l.threshold)) {
      r = tl::unexpected(p.bad(item, "limit." + l.name + ".clear",
                               l.above ? "must not be above the threshold" : "must not be below the threshold"));
    } else if (l.action == LimitAction::cap_power && power_watts == 0) {
      r = tl::unexpected(p.bad(item, "limit." + l.name, "action cap_power needs power_limit (watts)"));
    } else if (std::string why; l.action == LimitAction::cap_power &&
                                !drivers::accelerator_power_capable(l.metric, &why)) {
      // Said when the policy is loaded: a rule that could never act is a broken rule.
      r = tl::unexpected(p.bad(item, "limit." + l.name + ".action", why));
    } else if (l.action != LimitAction::cap_power && power_watts != 0) {
      r = tl::unexpected(p.bad(item, "limit." + l.name, "power_limit goes with action = \"cap_power\""));
    } else {
      if (!has_clear) {
        l.clear = l.threshold;
      }
      l.power_limit_mw = static_cast<std::uint32_t>(power_watts * 1000 + 0.5);
      pol.limits.push_back(std::move(l));
    }
  }
  return r;
}

void limits_to_json(const Policy& policy, nlohmann::json& rules) {
  for (const auto& l : policy.limits) {
    nlohmann::json j = {{"rule", l.name},
                        {"type", l.type},
                        {"metric", l.metric},
                        {l.above ? "above" : "below", l.threshold},
                        {"clear", l.clear},
                        {"for_seconds", seconds_of(l.for_duration)},
                        {"severity", to_string(l.severity)},
                        {"action", l.action == LimitAction::cap_power ? "cap_power" : "report"}};
    if (!l.match.empty()) {
      nlohmann::json m = nlohmann::json::object();
      for (const auto& [k, v] : l.match) {
        m[k] = v;
      }
      j["labels"] = m;
    }
    if (l.action == LimitAction::cap_power) {
      j["power_limit_watts"] = l.power_limit_mw / 1000.0;
    }
    rules.push_back(std::move(j));
  }
}

void LimitsEvaluator::set_rules(std::vector<LimitRule> rules,
                                std::vector<std::pair<LimitRule, LimitTransition>>* released) {
  std::vector<Bound> kept;  // the next rebind carries their state over by (rule, subject)
  for (Bound& b : bounds_) {
    const LimitRule& old = rules_[b.rule];
    if (auto it = std::find(rules.begin(), rules.end(), old); it != rules.end()) {
      b.rule = static_cast<std::size_t>(it - rules.begin());
      kept.push_back(std::move(b));
    } else if (b.firing && released != nullptr) {
      released->push_back({old, LimitTransition{0, false, b.subject, 0, b.labels}});
    }
  }
  rules_ = std::move(rules);
  bounds_ = std::move(kept);
  bound_ = false;  // rebind on the next evaluation
}

std::size_t LimitsEvaluator::firing() const {
  return static_cast<std::size_t>(
      std::count_if(bounds_.begin(), bounds_.end(), [](const Bound& b) { return b.firing; }));
}

void LimitsEvaluator::rebind(const std::vector<DriverSlot>& slots) {
  // States survive a rebind by subject: a catalog change must not re-fire what is firing.
  std::map<std::pair<std::size_t, std::string>, Bound> old;
  for (auto& b : bounds_) {
    old.emplace(std::pair{b.rule, b.subject}, std::move(b));
  }
  bounds_.clear();
  seen_.assign(slots.size(), nullptr);
  index_.assign(slots.size(), {});
  for (std::size_t s = 0; s < slots.size(); ++s) {
    const platform::Catalog* c = slots[s].front.catalog.get();
    seen_[s] = c;
    if (c == nullptr) {
      continue;
    }
    index_[s].assign(c->series.size(), {0, 0});
    for (std::size_t i = 0; i < c->series.size(); ++i) {
      const platform::Series& series = c->series[i];
      const platform::Family& fam = c->families[series.family];
      auto first = static_cast<std::uint32_t>(bounds_.size());
      for (std::size_t r = 0; r < rules_.size(); ++r) {
        if (rules_[r].metric != fam.name || !matches(series.labels, rules_[r].match)) {
          continue;
        }
        Bound b;
        b.rule = r;
        b.scale = fam.scale;
        b.subject = series_subject(fam.name, series.labels);
        b.labels = series.labels;
        if (auto it = old.find({r, b.subject}); it != old.end()) {
          b.pending_since = it->second.pending_since;
          b.firing = it->second.firing;
        }
        bounds_.push_back(std::move(b));
      }
      index_[s][i] = {first, static_cast<std::uint32_t>(bounds_.size()) - first};
    }
  }
  bound_ = true;
}

void LimitsEvaluator::evaluate(const std::vector<DriverSlot>& slots,
                               std::chrono::steady_clock::time_point now,
                               std::vector<LimitTransition>& out) {
  if (rules_.empty()) {
    return;
  }
  bool same = bound_ && seen_.size() == slots.size();
  for (std::size_t s = 0; same && s < slots.size(); ++s) {
    same = seen_[s] == slots[s].front.catalog.get();
  }
  if (!same) {
    rebind(slots);
  }
  for (std::size_t s = 0; s < slots.size(); ++s) {
    if (slots[s].state != DriverState::up) {
      continue;  // stale values judge nothing
    }
    const auto& idx = index_[s];
    for (const auto& reading : slots[s].front.readings) {
      if (reading.series >= idx.size() || idx[reading.series].second == 0) {
        continue;
      }
      auto [first, n] = idx[reading.series];
      for (std::uint32_t k = first; k < first + n; ++k) {
        Bound& b = bounds_[k];
        const LimitRule& rule = rules_[b.rule];
        double v = platform::to_double(reading.value, b.scale);
        bool beyond = rule.above ? v > rule.threshold : v < rule.threshold;
        if (b.firing) {
          bool back = rule.above ? v <= rule.clear : v >= rule.clear;
          if (back) {
            b.firing = false;
            b.pending_since.reset();
            out.push_back({b.rule, false, b.subject, v, b.labels});
          }
          continue;
        }
        if (!beyond) {
          b.pending_since.reset();
          continue;
        }
        if (!b.pending_since) {
          b.pending_since = now;
        }
        if (now - *b.pending_since >= rule.for_duration) {
          b.firing = true;
          out.push_back({b.rule, true, b.subject, v, b.labels});
        }
      }
    }
  }
}

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

}  // namespace gridnode::agent
