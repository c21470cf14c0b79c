#include "gridnode/drivers/pcie.hpp"

#include <array>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gridnode/platform/files.hpp"
#include "pcie/aer_parse.hpp"
#include "reading_plan.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "pcie";

// Ours (node_exporter has no AER collector), after its conventions: counters end in _total,
// the kernel's names are label values.
Family errors_family() {
  return {"gridnode_pcie_aer_errors_total",
          "PCIe AER errors the device reported, by severity and error type (aer_dev_* files).",
          MetricType::counter,
          {1, 0},
          ""};
}
Family messages_family() {
  return {"gridnode_pcie_aer_messages_total",
          "PCIe AER error messages the device reported, by severity (TOTAL_ERR_* of the "
          "aer_dev_* files).",
          MetricType::counter,
          {1, 0},
          ""};
}
Family rootport_family() {
  return {"gridnode_pcie_aer_rootport_messages_total",
          "PCIe AER error messages the root port received, by severity "
          "(aer_rootport_total_err_*).",
          MetricType::counter,
          {1, 0},
          ""};
}

constexpr std::array<std::string_view, 3> kDeviceFiles{"aer_dev_correctable", "aer_dev_nonfatal",
                                                       "aer_dev_fatal"};
constexpr std::array<std::pair<std::string_view, std::string_view>, 3> kRootPortFiles{{
    {"aer_rootport_total_err_cor", "correctable"},
    {"aer_rootport_total_err_nonfatal", "nonfatal"},
    {"aer_rootport_total_err_fatal", "fatal"},
}};

// An aer_dev_* file is a small table: its line names at discovery, in order, each on the
// series first_series + i. A root port's total is one number (`names` empty).
struct AerFile {
  std::vector<std::string> names;
};

// The kernel's aer_dev_fatal is about 20 lines of "NAME COUNT": a page holds any of them.
using Plan = ReadingPlan<AerFile, 4096>;

class PcieDriver final : public Driver {
 public:
  explicit PcieDriver(PcieOptions options)
      : dir_(options.roots.sys("bus/pci/devices")),
        plan_(kComponent, options.keep_files_open,
              "pcie readings need read access to /sys/bus/pci/devices") {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    auto discover = [this](Walk<AerFile>& walk) { return this->discover(walk); };
    auto walked = plan_.walk_if_due(out, discover);
    if (!walked) {
      return walked;
    }
    auto parse = [&](Plan::Entry& e, std::string_view text) { return parse_file(e, text, out); };
    for (auto& e : plan_.entries()) {
      plan_.read(e, out, parse);
    }
    return {};
  }

 private:
  // Pushes the file's counts. A line whose name is not the planned one (a status bit that
  // started counting shows a new line) makes the next sweep walk again; the lines before it
  // are still this sweep's. A count that does not parse fails the reading (counted once),
  // after the others were pushed.
  platform::Result<bool> parse_file(Plan::Entry& e, std::string_view text, Sweep& out) {
    if (e.state.names.empty()) {
      auto value = platform::parse_uint64(text);
      if (!value) {
        return tl::unexpected(value.error());
      }
      out.readings.push_back(Reading{e.series, Value::of_unsigned(*value)});
      return true;
    }
    pcie::AerReader reader(text);
    pcie::AerLine line;
    std::uint32_t i = 0;
    std::optional<platform::Error> bad;
    while (reader.next(line)) {
      if (i >= e.state.names.size() || e.state.names[i] != line.name) {
        plan_.request_rediscovery();
        break;
      }
      auto value = platform::parse_uint64(line.count);
      if (value) {
        out.readings.push_back(Reading{e.series + i, Value::of_unsigned(*value)});
      } else if (!bad) {
        bad = std::move(value.error());
      }
      ++i;
    }
    if (i < e.state.names.size() && !reader.next(line)) {
      plan_.request_rediscovery();  // fewer lines than planned
    }
    if (bad) {
      return tl::unexpected(std::move(*bad));
    }
    return true;
  }

  // Every device under bus/pci/devices whose AER files exist (the kernel shows them only for a
  // device with the AER capability; the root port files only on root ports). Each aer_dev_*
  // file is read now for its line names.
  platform::Result<void> discover(Walk<AerFile>& walk) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    problems_.begin();
    Catalog& c = walk.catalog;
    for (const auto& device : *names) {
      std::string base = dir_ + "/" + device;
      for (std::string_view file : kDeviceFiles) {
        std::string path = base + "/" + std::string(file);
        auto text = platform::read_small_file(path, plan_.buffer());
        if (!text) {
          if (text.error().code != std::errc::no_such_file_or_directory) {
            ++walk.errors;
            problems_.problem(path, "file skipped", text.error().code.message());
          }
          continue;
        }
        std::string severity(pcie::aer_severity(file));
        AerFile plan;
        std::uint32_t first = 0;
        pcie::AerReader reader(*text);
        pcie::AerLine line;
        while (reader.next(line)) {
          std::uint32_t series =
              line.total
                  ? c.add_series(c.add_family(messages_family()),
                                 {{"device", device}, {"severity", severity}})
                  : c.add_series(c.add_family(errors_family()), {{"device", device},
                                                                 {"error", std::string(line.name)},
                                                                 {"severity", severity}});
          if (plan.names.empty()) {
            first = series;
          }
          plan.names.emplace_back(line.name);
        }
        if (plan.names.empty()) {
          ++walk.errors;
          problems_.problem(path, "file skipped", "empty");
          continue;
        }
        walk.read(std::move(path), first, std::move(plan));
      }
      for (const auto& [file, severity] : kRootPortFiles) {
        std::string path = base + "/" + std::string(file);
        if (platform::read_small_file(path, plan_.buffer())) {
          walk.read(std::move(path),
                    c.add_series(c.add_family(rootport_family()),
                                 {{"device", device}, {"severity", std::string(severity)}}));
        }
      }
    }
    problems_.end();
    return {};
  }

  std::string dir_;
  Plan plan_;
  WalkProblems problems_{kComponent};
};

}  // namespace

std::unique_ptr<Driver> make_pcie_driver(PcieOptions options) {
  return std::make_unique<PcieDriver>(std::move(options));
}

}  // namespace gridnode::drivers
