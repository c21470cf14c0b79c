#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "gridnode/drivers/procfs.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "procfs/procfs_parse.hpp"
#include "procfs/table.hpp"
#include "rediscovery.hpp"

// Host state from procfs under node_exporter 1.5.0's names: the cpu, stat, meminfo, loadavg,
// netdev (its /proc/net/dev path) and diskstats collectors, plus gridnode_boot_info and
// gridnode_uptime_seconds. Each table is a file of its own (stat.cpp, meminfo.cpp,
// loadavg.cpp, netdev.cpp, diskstats.cpp) on the shared table reader (table.hpp); this file is
// the sweep that reads them, and the boot id.

namespace gridnode::drivers {
namespace {

using platform::Complaint;
using procfs::kComponent;
using procfs::kNoSeries;
using procfs::log_recovered;
using procfs::log_skipped;
using procfs::Table;
using procfs::TableFile;

constexpr procfs::FamilySpec kBootInfo{
    "gridnode_boot_info",
    "The kernel's boot id (procfs sys/kernel/random/boot_id); constant 1.",
    MetricType::gauge,
    {},
    ""};

class ProcfsDriver final : public Driver {
 public:
  explicit ProcfsDriver(ProcfsOptions options)
      : roots_(std::move(options.roots)),
        tables_{procfs::make_stat_table(roots_),   procfs::make_meminfo_table(roots_),
                procfs::make_loadavg_table(roots_), procfs::make_uptime_table(roots_),
                procfs::make_netdev_table(roots_),  procfs::make_diskstats_table(roots_)},
        boot_id_path_(roots_.proc("sys/kernel/random/boot_id")) {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    bool any_present = false;
    for (auto& t : tables_) {
      t->file().read();
      any_present = any_present || t->file().state() != TableFile::State::absent;
    }
    if (!any_present) {
      return platform::fail(std::errc::no_such_file_or_directory,
                            "procfs: no stat, meminfo, loadavg, uptime, net/dev or diskstats "
                            "under " +
                                roots_.procfs);
    }

    bool discover = !catalog_ || rediscovery_.due();
    if (!discover) {
      std::size_t readings_mark = out.readings.size();
      std::uint64_t errors_mark = out.errors;
      if (!emit(out)) {
        // A row appeared, vanished or changed shape: forget this pass and start again from
        // a catalog built from the same text.
        out.readings.resize(readings_mark);
        out.errors = errors_mark;
        discover = true;
      }
    }
    if (discover) {
      rediscover(out);
      // Cannot find a difference: the plan was just made from this very text.
      emit(out);
    }
    for (auto& t : tables_) {
      TableFile& file = t->file();
      if (file.state() == TableFile::State::failed) {
        ++out.errors;
        if (file.complaint().complain()) {
          log_skipped(file.path(), "", "", file.error().message());
        }
      } else {
        log_recovered(file.complaint(), file.path(), "");
      }
    }
    out.catalog = catalog_;
    return {};
  }

 private:
  // Pushes this sweep's readings. Returns false as soon as a table's rows differ from the plan.
  bool emit(Sweep& out) {
    for (auto& t : tables_) {
      if (!t->emit(out, emitter_)) {
        return false;
      }
    }
    if (boot_series_ != kNoSeries) {
      out.readings.push_back(Reading{boot_series_, Value::of_unsigned(1)});
    }
    return true;
  }

  // Builds the catalog and plan from the text this sweep read, keeping the old catalog pointer
  // when nothing a consumer can see changed.
  void rediscover(Sweep& out) {
    rediscovery_.done();
    auto next = std::make_shared<Catalog>();
    Catalog& c = *next;
    for (auto& t : tables_) {
      t->plan(c);
    }
    plan_boot(c, out);
    if (!catalog_ || *catalog_ != c) {
      catalog_ = std::move(next);
    }
    emitter_.reset(*catalog_);
  }

  void plan_boot(Catalog& c, Sweep& out) {
    boot_series_ = kNoSeries;
    std::array<char, 128> buf;
    auto text = platform::read_small_file(boot_id_path_, buf);
    if (!text) {
      // A kernel without the file has no boot id to report; anything else is a failed read.
      if (text.error().code != std::errc::no_such_file_or_directory) {
        ++out.errors;
        if (boot_complaint_.complain()) {
          log_skipped(boot_id_path_, "", "", text.error().message());
        }
      }
      return;
    }
    std::string_view id = procfs::parse_boot_id(*text);
    if (id.empty()) {
      ++out.errors;
      if (boot_complaint_.complain()) {
        log_skipped(boot_id_path_, "", "", "not a UUID");
      }
      return;
    }
    log_recovered(boot_complaint_, boot_id_path_, "");
    boot_series_ = c.add_series(procfs::add_family(c, kBootInfo), {{"boot_id", std::string(id)}});
  }

  platform::Roots roots_;
  // In the order node_exporter's collectors are compared in: stat, meminfo, loadavg, uptime,
  // net/dev, diskstats; the catalog's series follow it.
  std::array<std::unique_ptr<Table>, 6> tables_;
  std::string boot_id_path_;
  Complaint boot_complaint_;
  std::uint32_t boot_series_ = kNoSeries;

  std::shared_ptr<const Catalog> catalog_;
  Rediscovery rediscovery_;
  procfs::Emitter emitter_;
};

}  // namespace

std::unique_ptr<Driver> make_procfs_driver(ProcfsOptions options) {
  return std::make_unique<ProcfsDriver>(std::move(options));
}

}  // namespace gridnode::drivers
