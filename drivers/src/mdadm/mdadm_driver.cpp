#include "gridnode/drivers/mdadm.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "gridnode/platform/log.hpp"
#include "mdadm/mdstat_parse.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "mdadm";

// node_exporter 1.5.0's names and HELP texts, verbatim (collector/mdadm_linux.go); all gauges
// of plain counts.
Family state_family() {
  return {"node_md_state", "Indicates the state of md-device.", MetricType::gauge, {1, 0}, ""};
}
Family disks_family() {
  return {"node_md_disks",
          "Number of active/failed/spare disks of device.",
          MetricType::gauge,
          {1, 0},
          ""};
}
Family disks_required_family() {
  return {
      "node_md_disks_required", "Total number of disks of device.", MetricType::gauge, {1, 0}, ""};
}
Family blocks_family() {
  return {"node_md_blocks", "Total number of blocks on device.", MetricType::gauge, {1, 0}, ""};
}
Family blocks_synced_family() {
  return {
      "node_md_blocks_synced", "Number of blocks synced on device.", MetricType::gauge, {1, 0}, ""};
}

// The series of one device, consecutive from its first, in this order.
enum : std::uint32_t {
  kDisksRequired,
  kDisksActive,
  kDisksFailed,
  kDisksSpare,
  kStateActive,  // then inactive, recovering, resync, check
  kBlocks = kStateActive + 5,
  kBlocksSynced,
  kSeriesPerDevice,
};

// node_exporter's state labels and the activity each one is 1 for.
constexpr std::pair<std::string_view, mdadm::Activity> kStates[5] = {
    {"active", mdadm::Activity::active},         {"inactive", mdadm::Activity::inactive},
    {"recovering", mdadm::Activity::recovering}, {"resync", mdadm::Activity::resyncing},
    {"check", mdadm::Activity::checking},
};

// /proc/mdstat kept open and read whole from offset 0 each sweep. It is a seq_file of one
// record per array: a single read(2) stops at the kernel's page-sized buffer, so it is read
// until EOF, into a buffer that keeps its capacity (and grows, once, for a host with many
// arrays).
class MdstatFile {
 public:
  explicit MdstatFile(std::string path) : path_(std::move(path)), buf_(kFirstBytes) {}
  MdstatFile(const MdstatFile&) = delete;
  MdstatFile& operator=(const MdstatFile&) = delete;
  ~MdstatFile() { close(); }

  const std::string& path() const { return path_; }

  platform::Result<std::string_view> read() {
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) {
        return platform::fail(std::error_code(errno, std::generic_category()), path_);
      }
    }
    std::size_t used = 0;
    for (;;) {
      if (used == buf_.size()) {
        if (buf_.size() >= kMaxBytes) {
          close();
          return platform::fail(std::errc::file_too_large, path_);
        }
        buf_.resize(buf_.size() * 2);
      }
      ssize_t n = ::pread(fd_, buf_.data() + used, buf_.size() - used, static_cast<off_t>(used));
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        auto code = std::error_code(errno, std::generic_category());
        close();
        return platform::fail(code, path_);
      }
      if (n == 0) {
        return std::string_view(buf_.data(), used);
      }
      used += static_cast<std::size_t>(n);
    }
  }

  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

 private:
  static constexpr std::size_t kFirstBytes = 8192;
  static constexpr std::size_t kMaxBytes = 1 << 20;
  std::string path_;
  std::vector<char> buf_;
  int fd_ = -1;
};

struct DevicePlan {
  std::string name;
  std::uint32_t first_series = 0;
  platform::Complaint complaint;  // its lines being malformed
};

class MdadmDriver final : public Driver {
 public:
  explicit MdadmDriver(MdadmOptions options) : file_(options.roots.proc("mdstat")) {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    auto text = file_.read();
    if (!text) {
      // Absent (no md driver) or unreadable: the whole source; the next sweep tries again.
      plan_.clear();
      catalog_.reset();
      return tl::unexpected(std::move(text.error()));
    }
    if (!catalog_ || !emit(*text, out)) {
      // The arrays are not the planned ones (or this is the first sweep): plan from this very
      // text and read it again. Only then does the driver allocate.
      out.readings.clear();
      out.errors = 0;
      plan(*text);
      out.readings.reserve(plan_.size() * kSeriesPerDevice);
      emit(*text, out);
    }
    out.catalog = catalog_;
    return {};
  }

 private:
  // Pushes every planned device's readings; false as soon as the text's devices are not the
  // plan's (one appeared, went or was renamed).
  bool emit(std::string_view text, Sweep& out) {
    mdadm::MdstatReader reader(text);
    mdadm::MdDevice md;
    std::size_t next = 0;
    while (reader.next(md)) {
      if (next >= plan_.size() || plan_[next].name != md.name) {
        return false;
      }
      DevicePlan& device = plan_[next++];
      if (!md.error.empty()) {
        ++out.errors;
        if (device.complaint.complain()) {
          platform::log(platform::Level::debug, kComponent,
                        platform::LogLine("device skipped")
                            .kv("path", file_.path())
                            .kv("device", md.name)
                            .kv("err", md.error));
        }
        continue;
      }
      if (device.complaint.release()) {
        platform::log(
            platform::Level::debug, kComponent,
            platform::LogLine("device recovered").kv("path", file_.path()).kv("device", md.name));
      }
      push(out, device.first_series, md);
    }
    return next == plan_.size();
  }

  static void push(Sweep& out, std::uint32_t first, const mdadm::MdDevice& md) {
    auto put = [&](std::uint32_t offset, std::int64_t value) {
      out.readings.push_back(Reading{first + offset, Value::of_signed(value)});
    };
    put(kDisksRequired, md.disks_total);
    put(kDisksActive, md.disks_active);
    put(kDisksFailed, md.disks_failed);
    put(kDisksSpare, md.disks_spare);
    for (std::uint32_t s = 0; s < 5; ++s) {
      put(kStateActive + s, md.activity == kStates[s].second ? 1 : 0);
    }
    put(kBlocks, md.blocks_total);
    put(kBlocksSynced, md.blocks_synced);
  }

  // A catalog and plan for the devices in `text`, malformed ones included (their series get
  // values once their lines parse). The published catalog is kept when it is the same.
  void plan(std::string_view text) {
    std::vector<DevicePlan> next;
    Catalog c;
    mdadm::MdstatReader reader(text);
    mdadm::MdDevice md;
    while (reader.next(md)) {
      DevicePlan& device = next.emplace_back();
      device.name = std::string(md.name);
      for (const auto& before : plan_) {
        if (before.name == device.name) {
          device.complaint = before.complaint;
        }
      }
      Labels labels{{"device", device.name}};
      device.first_series = c.add_series(c.add_family(disks_required_family()), labels);
      for (std::string_view state : {"active", "failed", "spare"}) {
        c.add_series(c.add_family(disks_family()),
                     {{"device", device.name}, {"state", std::string(state)}});
      }
      for (const auto& [state, activity] : kStates) {
        c.add_series(c.add_family(state_family()),
                     {{"device", device.name}, {"state", std::string(state)}});
      }
      c.add_series(c.add_family(blocks_family()), labels);
      c.add_series(c.add_family(blocks_synced_family()), labels);
    }
    plan_ = std::move(next);
    if (!catalog_ || *catalog_ != c) {
      catalog_ = std::make_shared<const Catalog>(std::move(c));
    }
  }

  MdstatFile file_;
  std::vector<DevicePlan> plan_;
  std::shared_ptr<const Catalog> catalog_;
};

}  // namespace

std::unique_ptr<Driver> make_mdadm_driver(MdadmOptions options) {
  return std::make_unique<MdadmDriver>(std::move(options));
}

}  // namespace gridnode::drivers
