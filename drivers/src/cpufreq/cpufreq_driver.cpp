#include "gridnode/drivers/cpufreq.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gridnode/platform/files.hpp"
#include "reading_plan.hpp"
#include "thermal/thermal_parse.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "cpufreq";

// sysfs cpufreq values are kHz.
constexpr Scale kKilohertz{1000, 0};

// node_exporter 1.5.0's names and HELP texts, verbatim (collector/cpufreq_linux.go), with the
// file each is read from (procfs sysfs/system_cpu.go).
struct FrequencyFile {
  std::string_view file;
  std::string_view name;
  std::string_view help;
};
constexpr std::array<FrequencyFile, 6> kFiles{{
    {"cpuinfo_cur_freq", "node_cpu_frequency_hertz", "Current cpu thread frequency in hertz."},
    {"cpuinfo_min_freq", "node_cpu_frequency_min_hertz", "Minimum cpu thread frequency in hertz."},
    {"cpuinfo_max_freq", "node_cpu_frequency_max_hertz", "Maximum cpu thread frequency in hertz."},
    {"scaling_cur_freq", "node_cpu_scaling_frequency_hertz",
     "Current scaled CPU thread frequency in hertz."},
    {"scaling_min_freq", "node_cpu_scaling_frequency_min_hertz",
     "Minimum scaled CPU thread frequency in hertz."},
    {"scaling_max_freq", "node_cpu_scaling_frequency_max_hertz",
     "Maximum scaled CPU thread frequency in hertz."},
}};

// node_exporter 1.6's (collector/cpufreq_common.go).
Family governor_family() {
  return {"node_cpu_scaling_governor",
          "Current enabled CPU frequency governor.",
          MetricType::gauge,
          {1, 0},
          ""};
}

// A frequency entry has no governors. A scaling_governor entry's series are consecutive from
// its `series`, one per available governor, in the file's order.
struct Governors {
  std::vector<std::string> names;
};
using Plan = ReadingPlan<Governors>;

// A frequency: node_exporter's ReadUintFromFile (decimal, surrounding space trimmed).
platform::Result<std::uint64_t> parse_frequency(Plan::Entry& /*entry*/, std::string_view text) {
  return platform::parse_uint64(text);
}

// scaling_governor: the index of the current governor among the available ones, or names.size()
// when it is none of them (every series 0, as node_exporter reports it).
platform::Result<std::size_t> parse_governor(Plan::Entry& entry, std::string_view text) {
  std::string_view now = platform::trim(text);
  if (now.empty()) {
    return platform::fail(std::errc::invalid_argument, "empty scaling_governor");
  }
  const auto& names = entry.state.names;
  std::size_t i = 0;
  while (i < names.size() && names[i] != now) {
    ++i;
  }
  return i;
}

class CpufreqDriver final : public Driver {
 public:
  explicit CpufreqDriver(CpufreqOptions options)
      : dir_(options.roots.sys("devices/system/cpu")),
        plan_(kComponent, options.keep_files_open,
              "cpufreq readings refused: cpuinfo_cur_freq needs root or CAP_DAC_READ_SEARCH") {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    auto discover = [this](Walk<Governors>& walk) { return this->discover(walk); };
    auto walked = plan_.walk_if_due(out, discover);
    if (!walked) {
      return walked;
    }
    for (auto& e : plan_.entries()) {
      if (e.state.names.empty()) {
        if (auto khz = plan_.read(e, out, parse_frequency)) {
          out.readings.push_back(Reading{e.series, Value::of_unsigned(*khz)});
        }
        continue;
      }
      if (auto current = plan_.read(e, out, parse_governor)) {
        for (std::size_t i = 0; i < e.state.names.size(); ++i) {
          out.readings.push_back(Reading{e.series + static_cast<std::uint32_t>(i),
                                         Value::of_unsigned(i == *current ? 1 : 0)});
        }
      }
    }
    return {};
  }

 private:
  // node_exporter globs cpu[0-9]* (sorted, as list_dir is) and skips a CPU whose cpufreq
  // directory does not exist (os.Stat follows the cpufreq -> ../cpufreq/policyN link).
  platform::Result<void> discover(Walk<Governors>& walk) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    problems_.begin();
    Catalog& c = walk.catalog;
    for (const auto& entry : *names) {
      auto cpu = thermal::parse_class_index(entry, "cpu");
      if (!cpu) {
        continue;
      }
      std::string base = dir_ + "/" + entry + "/cpufreq/";
      for (const FrequencyFile& f : kFiles) {
        std::string path = base + std::string(f.file);
        if (!present(path)) {
          continue;
        }
        auto family = c.add_family(
            {std::string(f.name), std::string(f.help), MetricType::gauge, kKilohertz, "Hz"});
        walk.read(std::move(path), c.add_series(family, {{"cpu", std::string(*cpu)}}));
      }
      plan_governors(walk, base, *cpu);
    }
    problems_.end();
    return {};
  }

  // Whether discovery plans `path`: absent and refused files are left out as node_exporter
  // leaves them out (cpuinfo_cur_freq is 0400); other failures are planned, so that each sweep
  // counts them.
  bool present(const std::string& path) {
    auto text = platform::read_small_file(path, plan_.buffer());
    if (text) {
      return true;
    }
    auto code = text.error().code;
    return code != std::errc::no_such_file_or_directory && code != std::errc::not_a_directory &&
           code != std::errc::permission_denied;
  }

  // The governor series of one CPU, when it has both files (node_exporter 1.6 reports none
  // when scaling_governor is empty or unreadable).
  void plan_governors(Walk<Governors>& walk, const std::string& base, std::string_view cpu) {
    std::string available_path = base + "scaling_available_governors";
    auto available = platform::read_small_file(available_path, plan_.buffer());
    if (!available) {
      if (available.error().code != std::errc::no_such_file_or_directory) {
        problems_.problem(available_path, "governors skipped", available.error().code.message());
      }
      return;
    }
    Governors governors;
    std::string_view rest = platform::trim(*available);
    while (!rest.empty()) {
      std::size_t end = rest.find(' ');
      std::string_view name = rest.substr(0, end);
      if (!name.empty()) {
        governors.names.emplace_back(name);
      }
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    }
    std::string path = base + "scaling_governor";
    if (governors.names.empty() || !present(path)) {
      return;
    }
    auto family = walk.catalog.add_family(governor_family());
    std::uint32_t first = 0;
    for (std::size_t i = 0; i < governors.names.size(); ++i) {
      auto series = walk.catalog.add_series(
          family, {{"cpu", std::string(cpu)}, {"governor", governors.names[i]}});
      if (i == 0) {
        first = series;
      }
    }
    walk.read(std::move(path), first, std::move(governors));
  }

  std::string dir_;
  Plan plan_;
  WalkProblems problems_{kComponent};
};

}  // namespace

std::unique_ptr<Driver> make_cpufreq_driver(CpufreqOptions options) {
  return std::make_unique<CpufreqDriver>(std::move(options));
}

}  // namespace gridnode::drivers
