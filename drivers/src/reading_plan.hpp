#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "rediscovery.hpp"

namespace gridnode::drivers {

// The shape every "discover once, read many" sysfs driver shares (hwmon, thermal, powercap,
// amdgpu): a plan of kernel files, each feeding one series, walked again when Rediscovery says
// so and read on every sweep. A driver is then its discover() (which fills a Walk) and its parse
// function; see drivers/README.md.
//
// One reading of the plan. `State` is what a driver keeps per reading beyond the file (hwmon's
// value kind, powercap's wrap-corrected counter). The new walk sets it; a State with a member
// `void carry(const State& before)` takes over what must outlive a rediscovery (powercap's
// counter), called with the previous plan's State of the same path.
struct PlanEntryBase {
  platform::KernelFile file;  // empty path: `constant` is the value, nothing is read
  std::uint32_t series = 0;
  Value constant;
  // Read successfully at least once. Only then does ENOENT/ENODEV mean "vanished" and call for
  // discovery: a file missing from the start (a dangling link) would otherwise rediscover on
  // every sweep.
  bool seen_ok = false;
  platform::Complaint complaint;
};

template <class State>
struct PlanEntry : PlanEntryBase {
  State state{};
};

// ENOENT, or ENODEV: what sysfs answers on a kept-open file whose device went away (a reopen
// then gives ENOENT).
inline bool vanished(std::error_code code) {
  return code == std::errc::no_such_file_or_directory || code == std::errc::no_such_device;
}

// What one discovery walk produces: the catalog and the plan that reads it. Moved into the
// ReadingPlan when the walk succeeded.
template <class State>
struct Walk {
  using Entry = PlanEntry<State>;
  Catalog catalog;
  std::vector<Entry> entries;
  std::uint64_t errors = 0;  // discovery problems, counted into the sweep's errors

  Entry& read(std::string path, std::uint32_t series, State state = {}) {
    Entry& e = entries.emplace_back();
    e.file = platform::KernelFile(std::move(path));
    e.series = series;
    e.state = std::move(state);
    return e;
  }
  void constant(std::uint32_t series, Value value) {
    Entry& e = entries.emplace_back();
    e.series = series;
    e.constant = value;
  }
};

// Discovery problems recur at every walk: each is logged once (by path), and again only after
// a walk in which it did not occur. Call begin() before a walk and end() after it.
class WalkProblems {
 public:
  explicit WalkProblems(std::string_view component) : component_(component) {}
  void begin() { now_.clear(); }
  void problem(const std::string& path, std::string_view what, std::string_view reason) {
    now_.insert(path);
    if (before_.count(path) == 0) {
      platform::log(platform::Level::debug, component_,
                    platform::LogLine(what).kv("path", path).kv("err", reason));
    }
  }
  void end() { before_.swap(now_); }

 private:
  std::string_view component_;
  std::set<std::string> before_;
  std::set<std::string> now_;
};

// What ReadingPlan does that does not depend on the driver's State, compiled once
// (reading_plan.cpp) rather than once per driver.
class PlanCore {
 public:
  PlanCore(std::string_view component, bool keep_open, std::string_view permission_hint)
      : component_(component), keep_open_(keep_open), permission_hint_(permission_hint) {}

  std::string_view component() const { return component_; }
  // Walk again at the next sweep: the driver saw, in a reading's text, that what discovery
  // made of the device no longer holds (nvme's state label changed).
  void request_rediscovery() { rediscovery_.request(); }

 protected:
  // The entry's text, or nullopt when the read failed (skipped, counted; a reading that
  // worked and then vanished asks for a walk at the next sweep; EACCES warns once).
  std::optional<std::string_view> read_text(PlanEntryBase& e, std::span<char> buf, Sweep& out);
  // The reading was parsed: it works (again).
  void accepted(PlanEntryBase& e);
  void skip(PlanEntryBase& e, const platform::Error& err, Sweep& out);
  // A walk failed: no catalog until one succeeds, tried again at the next sweep.
  void walk_failed();
  // A walk succeeded: publishes its catalog (the old pointer when the set is the same).
  void walk_done(Catalog&& catalog, std::uint64_t errors, std::size_t entries, Sweep& out);

  Rediscovery rediscovery_;
  std::shared_ptr<const Catalog> catalog_;

 private:
  std::string_view component_;
  bool keep_open_;
  std::string_view permission_hint_;
  bool warned_permission_ = false;
};

// The plan and its loop. `Buffer` is the read buffer's size: node_exporter reads a sysfs
// attribute with one 128-byte read(2).
template <class State, std::size_t Buffer = 128>
class ReadingPlan : public PlanCore {
 public:
  using Entry = PlanEntry<State>;

  // `permission_hint` is said once, at warning level, the first time a reading is refused
  // with EACCES: a deployment problem (the unit lacks a capability), not a sensor fault.
  // `component` and `permission_hint` are literals: they are kept as views.
  using PlanCore::PlanCore;

  // The standard sweep: walks first when due (walk_if_due), then reads every entry and
  // reports what `parse(Entry&, std::string_view) -> Result<Value>` makes of its text.
  template <class Discover, class Parse>
  platform::Result<void> sweep(Sweep& out, Discover&& discover, Parse&& parse) {
    auto walked = walk_if_due(out, discover);
    if (!walked) {
      return walked;
    }
    for (auto& e : entries_) {
      if (e.file.path().empty()) {
        out.readings.push_back(Reading{e.series, e.constant});
      } else if (auto value = read(e, out, parse)) {
        out.readings.push_back(Reading{e.series, *value});
      }
    }
    return {};
  }

  // The first half of a sweep, for a driver that derives readings from several entries
  // (amdgpu's free VRAM): walks when Rediscovery says so through `discover`, which fills a
  // Walk and fails only when the whole tree is unreadable, and publishes the catalog. A failed
  // walk keeps nothing that points into a tree that is gone and is tried again next sweep.
  template <class Discover>
  platform::Result<void> walk_if_due(Sweep& out, Discover& discover) {
    if (rediscovery_.due()) {
      Walk<State> walk;
      auto found = discover(walk);
      if (!found) {
        entries_.clear();
        walk_failed();
        return found;
      }
      adopt(walk.entries);
      entries_ = std::move(walk.entries);
      walk_done(std::move(walk.catalog), walk.errors, entries_.size(), out);
    }
    out.catalog = catalog_;
    return {};
  }

  // Reads one entry that has a file and parses it (`parse(Entry&, std::string_view)` returns
  // a Result<T>): the value, or nullopt when the reading was skipped (counted in out.errors,
  // logged once until it recovers). A reading that worked and then vanished asks for a walk at
  // the next sweep.
  template <class Parse>
  auto read(Entry& e, Sweep& out, Parse& parse)
      -> std::optional<typename std::invoke_result_t<Parse&, Entry&, std::string_view>::value_type> {
    auto text = read_text(e, buf_, out);
    if (!text) {
      return std::nullopt;
    }
    auto value = parse(e, *text);
    if (!value) {
      skip(e, value.error(), out);
      return std::nullopt;
    }
    accepted(e);
    return std::move(*value);
  }

  std::vector<Entry>& entries() { return entries_; }
  // A buffer for discovery's small reads (label and name files), between sweeps' reads.
  std::span<char> buffer() { return buf_; }

 private:
  // Open descriptors, seen_ok and complaints carry over from the previous plan by path, so
  // that a rediscovery costs no reopen and a persistent problem still logs only once.
  void adopt(std::vector<Entry>& next) {
    if (entries_.empty()) {
      return;
    }
    std::unordered_map<std::string_view, Entry*> old;
    for (auto& e : entries_) {
      if (!e.file.path().empty()) {
        old.emplace(e.file.path(), &e);
      }
    }
    for (auto& e : next) {
      auto it = e.file.path().empty() ? old.end() : old.find(e.file.path());
      if (it != old.end()) {
        Entry& before = *it->second;
        e.file = std::move(before.file);
        e.seen_ok = before.seen_ok;
        e.complaint = before.complaint;
        if constexpr (requires(State& now, const State& was) { now.carry(was); }) {
          e.state.carry(before.state);
        }
      }
    }
  }

  std::vector<Entry> entries_;
  std::array<char, Buffer> buf_{};
};

}  // namespace gridnode::drivers
