#include "gridnode/drivers/nvme.hpp"

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "gridnode/platform/files.hpp"
#include "reading_plan.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "nvme";

// node_exporter 1.5.0's name and HELP text, verbatim (collector/nvme_linux.go).
Family info_family() {
  return {"node_nvme_info",
          "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
          MetricType::gauge,
          {1, 0},
          ""};
}

// The controller's state as discovery labelled it: the state file is read every sweep and
// compared with it.
struct StateLabel {
  std::string state;
};
using Plan = ReadingPlan<StateLabel>;

class NvmeDriver final : public Driver {
 public:
  explicit NvmeDriver(NvmeOptions options)
      : dir_(options.roots.sys("class/nvme")),
        plan_(kComponent, options.keep_files_open,
              "nvme readings need read access to /sys/class/nvme") {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    // The info sample is 1 while the state file reads; a state other than the label's is
    // still this sweep's sample (its series is all there is until the catalog is rebuilt),
    // and makes the next sweep walk again.
    auto parse_state = [this](Plan::Entry& e, std::string_view text) -> platform::Result<Value> {
      if (platform::trim(text) != e.state.state) {
        plan_.request_rediscovery();
      }
      return Value::of_unsigned(1);
    };
    return plan_.sweep(
        out, [this](Walk<StateLabel>& walk) { return discover(walk); }, parse_state);
  }

 private:
  // Reads every class/nvme entry's labels, as procfs's NVMeClass() does (util.SysReadFile:
  // one read, trimmed, so the model's padding goes).
  platform::Result<void> discover(Walk<StateLabel>& walk) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    problems_.begin();
    for (const auto& device : *names) {
      std::string base = dir_ + "/" + device;
      std::array<std::optional<std::string>, 4> labels;
      constexpr std::array<std::string_view, 4> kFiles{"firmware_rev", "model", "serial", "state"};
      bool ok = true;
      for (std::size_t i = 0; i < kFiles.size() && ok; ++i) {
        labels[i] = read_label(base + "/" + std::string(kFiles[i]), walk);
        ok = labels[i].has_value();
      }
      if (!ok) {
        continue;
      }
      auto series = walk.catalog.add_series(walk.catalog.add_family(info_family()),
                                            {{"device", device},
                                             {"firmware_revision", *labels[0]},
                                             {"model", *labels[1]},
                                             {"serial", *labels[2]},
                                             {"state", *labels[3]}});
      walk.read(base + "/state", series, StateLabel{*labels[3]});
    }
    problems_.end();
    return {};
  }

  std::optional<std::string> read_label(const std::string& path, Walk<StateLabel>& walk) {
    auto text = platform::read_small_file(path, plan_.buffer());
    if (!text) {
      ++walk.errors;
      problems_.problem(path, "device skipped", text.error().code.message());
      return std::nullopt;
    }
    return std::string(platform::trim(*text));
  }

  std::string dir_;
  Plan plan_;
  WalkProblems problems_{kComponent};
};

}  // namespace

std::unique_ptr<Driver> make_nvme_driver(NvmeOptions options) {
  return std::make_unique<NvmeDriver>(std::move(options));
}

}  // namespace gridnode::drivers
