#include "gridnode/drivers/pressure.hpp"

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "gridnode/platform/files.hpp"
#include "pressure/pressure_parse.hpp"
#include "reading_plan.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "pressure";
constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

// The kernel's totals are microseconds.
constexpr Scale kMicroseconds{1, -6};

// node_exporter 1.5.0's names and HELP texts, verbatim (collector/pressure_linux.go).
struct Resource {
  std::string_view file;
  std::string_view some_name;
  std::string_view some_help;
  std::string_view full_name;  // empty: "full" is not exported (cpu)
  std::string_view full_help;
};
constexpr std::array<Resource, 3> kResources{{
    {"cpu",
     "node_pressure_cpu_waiting_seconds_total",
     "Total time in seconds that processes have waited for CPU time",
     {},
     {}},
    {"io", "node_pressure_io_waiting_seconds_total",
     "Total time in seconds that processes have waited due to IO congestion",
     "node_pressure_io_stalled_seconds_total",
     "Total time in seconds no process could make progress due to IO congestion"},
    {"memory", "node_pressure_memory_waiting_seconds_total",
     "Total time in seconds that processes have waited for memory",
     "node_pressure_memory_stalled_seconds_total",
     "Total time in seconds no process could make progress due to memory congestion"},
}};

Family counter(std::string_view name, std::string_view help) {
  return {std::string(name), std::string(help), MetricType::counter, kMicroseconds, "s"};
}

// One file per resource; the plan's series is the "some" total, the state holds the "full"
// one's.
struct FullSeries {
  std::uint32_t full = kNone;
};
// Two lines of up to ~75 bytes each (20-digit totals): more than sysfs's 128.
using Plan = ReadingPlan<FullSeries, 256>;

platform::Result<pressure::Totals> parse(Plan::Entry& /*entry*/, std::string_view text) {
  return pressure::parse_totals(text);
}

class PressureDriver final : public Driver {
 public:
  explicit PressureDriver(PressureOptions options)
      : dir_(options.roots.proc("pressure")),
        plan_(kComponent, options.keep_files_open, "pressure readings refused (permission)") {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    auto discover = [this](Walk<FullSeries>& walk) { return this->discover(walk); };
    auto walked = plan_.walk_if_due(out, discover);
    if (!walked) {
      return walked;
    }
    for (auto& e : plan_.entries()) {
      auto totals = plan_.read(e, out, parse);
      if (!totals) {
        continue;
      }
      out.readings.push_back(Reading{e.series, Value::of_unsigned(totals->some)});
      if (e.state.full == kNone) {
        continue;
      }
      if (totals->full) {
        out.readings.push_back(Reading{e.state.full, Value::of_unsigned(*totals->full)});
      } else {
        ++out.errors;  // io and memory have had "full" since PSI began (4.20)
      }
    }
    return {};
  }

 private:
  // The three files node_exporter reads, in its order. Each is read once here: absent, or
  // EOPNOTSUPP (PSI compiled in but disabled at boot), leaves the resource out.
  platform::Result<void> discover(Walk<FullSeries>& walk) {
    std::size_t disabled = 0;
    std::size_t found = 0;
    for (const Resource& r : kResources) {
      std::string path = dir_ + "/" + std::string(r.file);
      auto text = platform::read_small_file(path, plan_.buffer());
      if (!text) {
        auto code = text.error().code;
        if (code == std::errc::operation_not_supported) {
          ++disabled;
          continue;
        }
        if (code == std::errc::no_such_file_or_directory) {
          continue;
        }
        // Unreadable for another reason: planned, so that the sweep counts and logs it.
      }
      ++found;
      Catalog& c = walk.catalog;
      auto some = c.add_series(c.add_family(counter(r.some_name, r.some_help)), {});
      FullSeries state;
      if (!r.full_name.empty()) {
        state.full = c.add_series(c.add_family(counter(r.full_name, r.full_help)), {});
      }
      walk.read(std::move(path), some, state);
    }
    if (found == 0) {
      return platform::fail(std::errc::no_such_file_or_directory,
                            disabled != 0 ? dir_ +
                                                ": pressure stall information is disabled "
                                                "(boot with psi=1)"
                                          : dir_);
    }
    return {};
  }

  std::string dir_;
  Plan plan_;
};

}  // namespace

std::unique_ptr<Driver> make_pressure_driver(PressureOptions options) {
  return std::make_unique<PressureDriver>(std::move(options));
}

}  // namespace gridnode::drivers
