#include "gridnode/drivers/filesystem.hpp"

#include <regex.h>

#include <array>
#include <climits>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "call_worker.hpp"
#include "filesystem/mounts.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "filesystem";

// node_exporter 1.5.0's names and HELP texts, verbatim (collector/filesystem_common.go), in the
// order it emits them per mount.
enum Field : std::uint32_t {
  device_error,
  size,
  free,
  avail,
  files,
  files_free,
  readonly,
  kFields
};

Family field_family(Field f) {
  switch (f) {
    case device_error:
      return {"node_filesystem_device_error",
              "Whether an error occurred while getting statistics for the given device.",
              MetricType::gauge,
              {1, 0},
              ""};
    case size:
      return {"node_filesystem_size_bytes",
              "Filesystem size in bytes.",
              MetricType::gauge,
              {1, 0},
              "B"};
    case free:
      return {"node_filesystem_free_bytes",
              "Filesystem free space in bytes.",
              MetricType::gauge,
              {1, 0},
              "B"};
    case avail:
      return {"node_filesystem_avail_bytes",
              "Filesystem space available to non-root users in bytes.",
              MetricType::gauge,
              {1, 0},
              "B"};
    case files:
      return {
          "node_filesystem_files", "Filesystem total file nodes.", MetricType::gauge, {1, 0}, ""};
    case files_free:
      return {"node_filesystem_files_free",
              "Filesystem total free file nodes.",
              MetricType::gauge,
              {1, 0},
              ""};
    case readonly:
    case kFields:
      break;
  }
  return {
      "node_filesystem_readonly", "Filesystem read-only status.", MetricType::gauge, {1, 0}, ""};
}

// One statfs in flight on a worker. The worker's job holds a raw pointer to it (one pointer
// fits std::function's inline storage: no allocation per call); a Lane whose call never came
// back hands its StatCall to the worker's state on destruction rather than free what the hung
// thread will write.
struct StatCall {
  std::string path;
  struct statfs st {};
  int err = 0;
  int (*fn)(const char*, struct statfs*) = nullptr;
};

struct Lane {
  std::unique_ptr<CallWorker> worker;
  std::unique_ptr<StatCall> call;

  Lane() = default;
  Lane(Lane&&) = default;
  Lane& operator=(Lane&& other) noexcept {
    abandon();
    worker = std::move(other.worker);
    call = std::move(other.call);
    return *this;
  }
  Lane(const Lane&) = delete;
  Lane& operator=(const Lane&) = delete;
  ~Lane() { abandon(); }

  bool busy() const { return worker && worker->busy(); }

 private:
  void abandon() {
    if (busy()) {
      // Still written by a thread that may never return: it goes with the worker's state,
      // when (if) the thread is done with it.
      worker->keep_until_done(std::move(call));
    }
  }
};

Lane make_lane(int (*fn)(const char*, struct statfs*)) {
  Lane lane;
  lane.worker = std::make_unique<CallWorker>();
  lane.call = std::make_unique<StatCall>();
  lane.call->path.reserve(PATH_MAX);
  lane.call->fn = fn;
  return lane;
}

struct PlannedMount {
  std::string mount_point;
  std::string stat_path;  // <rootfs>/<mount point>
  bool read_only = false;
  bool stalled = false;
  std::uint32_t series = 0;       // device_error's; the other fields follow in Field order
  platform::Complaint complaint;  // statfs failing
};

// A POSIX extended regular expression (regcomp(3)), which reads node_exporter's RE2 defaults
// the same way and costs the agent no template code. Owned, movable.
class Regex {
 public:
  static platform::Result<Regex> compile(const std::string& pattern, std::string_view what) {
    auto re = std::make_unique<regex_t>();
    int rc = regcomp(re.get(), pattern.c_str(), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      std::array<char, 256> msg{};
      regerror(rc, re.get(), msg.data(), msg.size());
      return platform::fail(std::errc::invalid_argument,
                            std::string(what) + ": not a regular expression: " + msg.data());
    }
    Regex r;
    r.re_.reset(re.release());
    return r;
  }
  // Unanchored, as Go's MatchString.
  bool search(const std::string& text) const {
    return regexec(re_.get(), text.c_str(), 0, nullptr, 0) == 0;
  }

 private:
  struct Free {
    void operator()(regex_t* re) const {
      regfree(re);
      delete re;
    }
  };
  std::unique_ptr<regex_t, Free> re_;
};

struct Stalled {
  std::string mount_point;
  Lane lane;
};

class FilesystemDriver final : public Driver {
 public:
  explicit FilesystemDriver(FilesystemOptions options)
      : options_(std::move(options)),
        statfs_(options_.statfs_call != nullptr ? options_.statfs_call : ::statfs),
        pid1_mounts_(options_.roots.proc("1/mounts")),
        mounts_(options_.roots.proc("mounts")) {
    stalled_.reserve(kMaxStalledMounts);
  }

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    auto read = read_mounts();
    if (!read) {
      catalog_.reset();
      plan_.clear();
      text_before_.clear();
      return read;
    }
    if (!catalog_ || text_ != text_before_) {
      plan();
      text_before_.assign(text_);
    }
    out.catalog = catalog_;
    out.errors += malformed_;
    reap();
    // Mounts that hang together (one NFS server behind many) each cost mount_timeout once; a
    // sweep stops calling after two of them, so that it stays well inside the sampler's
    // deadline. The mounts it did not reach are skipped (counted) and come first next sweep.
    const auto budget_end = std::chrono::steady_clock::now() + 2 * options_.mount_timeout;
    const std::size_t n = plan_.size();
    const std::size_t start = n == 0 ? 0 : resume_ % n;
    resume_ = 0;
    bool cut = false;
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (start + k) % n;
      PlannedMount& m = plan_[i];
      if (!m.stalled && std::chrono::steady_clock::now() >= budget_end) {
        if (!cut) {
          resume_ = i;
          cut = true;
        }
        ++out.errors;
        continue;
      }
      stat(m, out);
    }
    if (cut ? out_of_time_.complain() : out_of_time_.release()) {
      platform::log(platform::Level::debug, kComponent,
                    platform::LogLine(cut ? "sweep out of time, mounts left for the next one"
                                          : "sweeps reach every mount again"));
    }
    return {};
  }

 private:
  // node_exporter reads PID 1's mounts (the host's, from a container sharing its procfs), and
  // /proc/mounts where 1/ is hidden (hidepid) or absent.
  platform::Result<void> read_mounts() {
    auto r = platform::read_file(pid1_mounts_, text_, kMountsLimit);
    if (!r && r.error().code == std::errc::no_such_file_or_directory) {
      r = platform::read_file(mounts_, text_, kMountsLimit);
    }
    return r;
  }

  // The mounts changed: a new plan and catalog (the old pointer if the set is the same).
  void plan() {
    // Compiled here, for this plan only: glibc's compiled patterns and their DFA cache hold
    // about 100 KiB of heap, and mounts change rarely. make_filesystem_driver() has checked
    // that both compile.
    auto mount_points = Regex::compile(options_.mount_points_exclude, "mount_points_exclude");
    auto fs_types = Regex::compile(options_.fs_types_exclude, "fs_types_exclude");
    if (!mount_points || !fs_types) {
      return;
    }
    auto parsed = filesystem::parse_mounts(text_, options_.roots.rootfs);
    malformed_ = parsed.malformed;
    Catalog catalog;
    std::vector<std::uint32_t> families;
    for (std::uint32_t f = 0; f < kFields; ++f) {
      families.push_back(catalog.add_family(field_family(static_cast<Field>(f))));
    }
    std::vector<PlannedMount> next;
    std::set<std::string> seen;
    for (auto& m : parsed.mounts) {
      if (mount_points->search(m.mount_point)) {
        continue;
      }
      if (fs_types->search(m.fs_type)) {
        continue;
      }
      // node_exporter reports a mount once even where it is listed several times (a bind
      // mount of the same device on the same point, a stacked mount).
      if (!seen.insert(m.device + '\0' + m.mount_point + '\0' + m.fs_type).second) {
        continue;
      }
      PlannedMount& p = next.emplace_back();
      p.stat_path = options_.roots.root(m.mount_point);
      p.read_only = m.read_only;
      Labels labels{{"device", m.device}, {"fstype", m.fs_type}, {"mountpoint", m.mount_point}};
      for (std::uint32_t f = 0; f < kFields; ++f) {
        auto s = catalog.add_series(families[f], labels);
        if (f == 0) {
          p.series = s;
        }
      }
      p.mount_point = std::move(m.mount_point);
      for (const auto& s : stalled_) {
        p.stalled = p.stalled || s.mount_point == p.mount_point;
      }
      for (auto& before : plan_) {
        if (before.stat_path == p.stat_path) {
          p.complaint = before.complaint;
        }
      }
    }
    plan_ = std::move(next);
    if (!catalog_ || *catalog_ != catalog) {
      catalog_ = std::make_shared<const Catalog>(std::move(catalog));
    }
  }

  // Stalled calls that have come back: their mounts are statted again from this sweep on, and
  // the worker is kept for the next call.
  void reap() {
    for (std::size_t i = 0; i < stalled_.size();) {
      if (stalled_[i].lane.busy()) {
        ++i;
        continue;
      }
      platform::log(platform::Level::notice, kComponent,
                    platform::LogLine("mount point responds again")
                        .kv("mountpoint", stalled_[i].mount_point));
      for (auto& m : plan_) {
        if (m.mount_point == stalled_[i].mount_point) {
          m.stalled = false;
        }
      }
      if (!spare_.worker) {
        spare_ = std::move(stalled_[i].lane);
      }
      stalled_[i] = std::move(stalled_.back());
      stalled_.pop_back();
    }
  }

  void stat(PlannedMount& m, Sweep& out) {
    if (m.stalled) {
      out.readings.push_back(Reading{m.series + device_error, Value::of_unsigned(1)});
      return;
    }
    if (!spare_.worker) {
      if (stalled_.size() >= kMaxStalledMounts) {
        // Every worker we allow is stuck in the kernel: no call is made, none is waited for.
        out.readings.push_back(Reading{m.series + device_error, Value::of_unsigned(1)});
        ++out.errors;
        return;
      }
      spare_ = make_lane(statfs_);
    }
    StatCall* call = spare_.call.get();
    call->path.assign(m.stat_path);
    call->err = 0;
    spare_.worker->submit(
        [call] { call->err = call->fn(call->path.c_str(), &call->st) == 0 ? 0 : errno; });
    if (!spare_.worker->wait_until(std::chrono::steady_clock::now() + options_.mount_timeout)) {
      platform::log(platform::Level::warning, kComponent,
                    platform::LogLine("mount point stalled, not statted again until its call "
                                      "returns")
                        .kv("mountpoint", m.mount_point)
                        .kv("path", m.stat_path));
      m.stalled = true;
      stalled_.push_back(Stalled{m.mount_point, std::move(spare_)});
      out.readings.push_back(Reading{m.series + device_error, Value::of_unsigned(1)});
      return;
    }
    if (call->err != 0) {
      if (m.complaint.complain()) {
        platform::log(platform::Level::debug, kComponent,
                      platform::LogLine("statfs failed")
                          .kv("path", m.stat_path)
                          .kv("err", std::generic_category().message(call->err)));
      }
      out.readings.push_back(Reading{m.series + device_error, Value::of_unsigned(1)});
      return;
    }
    if (m.complaint.release()) {
      platform::log(platform::Level::debug, kComponent,
                    platform::LogLine("statfs works again").kv("path", m.stat_path));
    }
    const struct statfs& st = call->st;
    auto bsize = static_cast<std::uint64_t>(st.f_bsize);
    auto push = [&](Field f, std::uint64_t v) {
      out.readings.push_back(Reading{m.series + f, Value::of_unsigned(v)});
    };
    push(device_error, 0);
    push(size, static_cast<std::uint64_t>(st.f_blocks) * bsize);
    push(free, static_cast<std::uint64_t>(st.f_bfree) * bsize);
    push(avail, static_cast<std::uint64_t>(st.f_bavail) * bsize);
    push(files, static_cast<std::uint64_t>(st.f_files));
    push(files_free, static_cast<std::uint64_t>(st.f_ffree));
    push(readonly, m.read_only ? 1 : 0);
  }

  // A host with thousands of container mounts has a mounts file of a few hundred KiB.
  static constexpr std::size_t kMountsLimit = 8 << 20;

  FilesystemOptions options_;
  int (*statfs_)(const char*, struct statfs*);
  std::string pid1_mounts_;
  std::string mounts_;
  std::string text_;
  std::string text_before_;
  std::uint64_t malformed_ = 0;
  std::vector<PlannedMount> plan_;
  std::shared_ptr<const Catalog> catalog_;
  Lane spare_;                    // the worker for the next call
  std::vector<Stalled> stalled_;  // workers stuck in a call, with the mount they are stuck on
  std::size_t resume_ = 0;        // the first mount the last sweep had no time for
  platform::Complaint out_of_time_;
};

}  // namespace

platform::Result<std::unique_ptr<Driver>> make_filesystem_driver(FilesystemOptions options) {
  auto mount_points = Regex::compile(options.mount_points_exclude, "mount_points_exclude");
  if (!mount_points) {
    return tl::unexpected(mount_points.error());
  }
  auto fs_types = Regex::compile(options.fs_types_exclude, "fs_types_exclude");
  if (!fs_types) {
    return tl::unexpected(fs_types.error());
  }
  return std::make_unique<FilesystemDriver>(std::move(options));
}

}  // namespace gridnode::drivers
