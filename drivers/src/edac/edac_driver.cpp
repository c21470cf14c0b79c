#include "gridnode/drivers/edac.hpp"

#include <memory>
#include <string>
#include <utility>

#include "edac/edac_parse.hpp"
#include "gridnode/platform/files.hpp"
#include "reading_plan.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "edac";

// node_exporter 1.5.0's names and HELP texts, verbatim (collector/edac_linux.go).
Family ce_family() {
  return {"node_edac_correctable_errors_total",
          "Total correctable memory errors.",
          MetricType::counter,
          {1, 0},
          ""};
}
Family ue_family() {
  return {"node_edac_uncorrectable_errors_total",
          "Total uncorrectable memory errors.",
          MetricType::counter,
          {1, 0},
          ""};
}
Family csrow_ce_family() {
  return {"node_edac_csrow_correctable_errors_total",
          "Total correctable memory errors for this csrow.",
          MetricType::counter,
          {1, 0},
          ""};
}
Family csrow_ue_family() {
  return {"node_edac_csrow_uncorrectable_errors_total",
          "Total uncorrectable memory errors for this csrow.",
          MetricType::counter,
          {1, 0},
          ""};
}

// Every edac count is an unsigned decimal (readUintFromFile: ParseUint base 10).
struct NoState {};
using Plan = ReadingPlan<NoState>;

platform::Result<Value> parse_count(Plan::Entry& /*entry*/, std::string_view text) {
  auto value = platform::parse_uint64(text);
  if (!value) {
    return tl::unexpected(value.error());
  }
  return Value::of_unsigned(*value);
}

class EdacDriver final : public Driver {
 public:
  explicit EdacDriver(EdacOptions options)
      : dir_(options.roots.sys("devices/system/edac/mc")),
        plan_(kComponent, options.keep_files_open,
              "edac readings need read access to /sys/devices/system/edac") {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    return plan_.sweep(
        out, [this](Walk<NoState>& walk) { return discover(walk); }, parse_count);
  }

 private:
  // Walks mc/mc[0-9]* and each controller's csrow[0-9]*, as node_exporter does. The per-DIMM
  // counters of newer kernels (dimmN/dimm_ce_count) are not node_exporter 1.5.0's and are not
  // read. A file that is missing is planned anyway and counted at every sweep: a controller
  // without ce_count is a broken EDAC driver, worth an error rather than silence.
  platform::Result<void> discover(Walk<NoState>& walk) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    Catalog& c = walk.catalog;
    for (const auto& entry : *names) {
      auto mc = edac::parse_index(entry, "mc");
      if (!mc) {
        continue;
      }
      std::string base = dir_ + "/" + entry;
      std::string controller(*mc);
      walk.read(base + "/ce_count",
                c.add_series(c.add_family(ce_family()), {{"controller", controller}}));
      walk.read(base + "/ce_noinfo_count",
                c.add_series(c.add_family(csrow_ce_family()),
                             {{"controller", controller}, {"csrow", "unknown"}}));
      walk.read(base + "/ue_count",
                c.add_series(c.add_family(ue_family()), {{"controller", controller}}));
      walk.read(base + "/ue_noinfo_count",
                c.add_series(c.add_family(csrow_ue_family()),
                             {{"controller", controller}, {"csrow", "unknown"}}));
      auto rows = platform::list_dir(base);
      if (!rows) {
        continue;  // the controller went away during the walk; its readings will say so
      }
      for (const auto& row_entry : *rows) {
        auto row = edac::parse_index(row_entry, "csrow");
        if (!row) {
          continue;
        }
        Labels labels{{"controller", controller}, {"csrow", std::string(*row)}};
        std::string row_base = base + "/" + row_entry;
        walk.read(row_base + "/ce_count", c.add_series(c.add_family(csrow_ce_family()), labels));
        walk.read(row_base + "/ue_count",
                  c.add_series(c.add_family(csrow_ue_family()), std::move(labels)));
      }
    }
    return {};
  }

  std::string dir_;
  Plan plan_;
};

}  // namespace

std::unique_ptr<Driver> make_edac_driver(EdacOptions options) {
  return std::make_unique<EdacDriver>(std::move(options));
}

}  // namespace gridnode::drivers
