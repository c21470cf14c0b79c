// BM_HwmonSweep: one steady-state sweep of the hwmon driver over a generated tree of about 300
// readings (two coretemp packages, two nct6775 Super-I/O chips), with the descriptors kept
// open (the default) and, as the baseline, opened, read and closed per file each sweep. Both
// include the driver's periodic rediscovery (one walk every 60 sweeps), as a real agent pays
// it; BM_HwmonDiscover times that walk alone.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gridnode/drivers/hwmon.hpp"

namespace gridnode::drivers {
namespace {

namespace fs = std::filesystem;

// A sysfs-like tree in a temporary directory, built once per process and removed at exit.
class BenchTree {
 public:
  BenchTree() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/gn-hwmon-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::abort();
    }
    root_ = tmpl;
    coretemp(0, 0);
    coretemp(1, 1);
    nct6775(2, 656);
    nct6775(3, 672);
  }
  ~BenchTree() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  BenchTree(const BenchTree&) = delete;
  BenchTree& operator=(const BenchTree&) = delete;

  std::string sysfs() const { return root_ + "/sys"; }

 private:
  void write(const std::string& rel, const std::string& content) {
    fs::path p = fs::path(root_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content << '\n';
  }

  // class/hwmon/hwmonN -> ../../devices/platform/<device>/hwmon/hwmonN, device -> ../..
  std::string chip(int n, const std::string& device, const std::string& name) {
    std::string hw = "sys/devices/platform/" + device + "/hwmon/hwmon" + std::to_string(n);
    fs::create_directories(fs::path(root_) / hw);
    fs::create_directories(fs::path(root_) / "sys/class/hwmon");
    fs::create_symlink("../../devices/platform/" + device + "/hwmon/hwmon" + std::to_string(n),
                       fs::path(root_) / "sys/class/hwmon" / ("hwmon" + std::to_string(n)));
    fs::create_symlink("../..", fs::path(root_) / hw / "device");
    write(hw + "/name", name);
    write(hw + "/power/control", "auto");
    write("sys/devices/platform/" + device + "/power/control", "auto");
    return hw;
  }

  void coretemp(int n, int package) {
    std::string hw = chip(n, "coretemp." + std::to_string(package), "coretemp");
    for (int i = 1; i <= 9; ++i) {
      std::string t = hw + "/temp" + std::to_string(i);
      write(t + "_input", std::to_string(40000 + 1000 * i));
      write(t + "_max", "80000");
      write(t + "_crit", "100000");
      write(t + "_crit_alarm", "0");
      write(t + "_label",
            i == 1 ? "Package id " + std::to_string(package) : "Core " + std::to_string(i - 2));
    }
  }

  void nct6775(int n, int address) {
    std::string hw = chip(n, "nct6775." + std::to_string(address), "nct6775");
    for (int i = 0; i < 9; ++i) {
      std::string in = hw + "/in" + std::to_string(i);
      write(in + "_input", std::to_string(1000 + 250 * i));
      write(in + "_min", "0");
      write(in + "_max", "3728");
      write(in + "_alarm", "0");
      write(in + "_beep", "0");
    }
    for (int i = 1; i <= 3; ++i) {
      std::string fan = hw + "/fan" + std::to_string(i);
      write(fan + "_input", std::to_string(800 + 100 * i));
      write(fan + "_min", "0");
      write(fan + "_alarm", "0");
      write(fan + "_beep", "0");
      write(fan + "_div", "8");
      std::string pwm = hw + "/pwm" + std::to_string(i);
      write(pwm, "128");
      write(pwm + "_enable", "5");
      write(pwm + "_mode", "1");
    }
    const char* labels[] = {"SYSTIN", "CPUTIN", "AUXTIN0", "PECI Agent 0"};
    for (int i = 1; i <= 4; ++i) {
      std::string t = hw + "/temp" + std::to_string(i);
      write(t + "_input", std::to_string(30000 + 500 * i));
      write(t + "_max", "80000");
      write(t + "_max_hyst", "75000");
      write(t + "_alarm", "0");
      write(t + "_beep", "0");
      write(t + "_type", "4");
      write(t + "_offset", "0");
      write(t + "_label", labels[i - 1]);
    }
    write(hw + "/intrusion0_alarm", "0");
    write(hw + "/intrusion0_beep", "0");
    write(hw + "/intrusion1_alarm", "0");
    write(hw + "/intrusion1_beep", "0");
    write(hw + "/beep_enable", "0");
    write(hw + "/cpu0_vid", "1150");
  }

  std::string root_;
};

const BenchTree& bench_tree() {
  static const BenchTree tree;
  return tree;
}

void run_sweeps(benchmark::State& state, bool keep_files_open) {
  HwmonOptions options;
  options.roots.sysfs = bench_tree().sysfs();
  options.keep_files_open = keep_files_open;
  auto driver = make_hwmon_driver(std::move(options));
  Sweep sweep;
  // The first sweep walks the tree; what is timed is the steady state.
  if (!driver->sweep(sweep) || sweep.errors != 0) {
    state.SkipWithError("discovery failed");
    return;
  }
  std::size_t readings = sweep.readings.size();
  for (auto _ : state) {
    sweep.reset();
    auto result = driver->sweep(sweep);
    benchmark::DoNotOptimize(result);
    benchmark::DoNotOptimize(sweep.readings.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(readings));
  state.counters["readings"] = static_cast<double>(readings);
}

// The default: one pread(2) per reading on descriptors kept open.
void BM_HwmonSweep(benchmark::State& state) { run_sweeps(state, true); }
BENCHMARK(BM_HwmonSweep);

// The naive baseline: open(2) + pread(2) + close(2) per reading, as node_exporter does.
void BM_HwmonSweepReopen(benchmark::State& state) { run_sweeps(state, false); }
BENCHMARK(BM_HwmonSweepReopen);

// What the steady state amortises (one walk every 60 sweeps): a new driver's first sweep.
void BM_HwmonDiscover(benchmark::State& state) {
  std::size_t readings = 0;
  for (auto _ : state) {
    HwmonOptions options;
    options.roots.sysfs = bench_tree().sysfs();
    auto driver = make_hwmon_driver(std::move(options));
    Sweep sweep;
    auto result = driver->sweep(sweep);
    benchmark::DoNotOptimize(result);
    readings = sweep.readings.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(readings));
}
BENCHMARK(BM_HwmonDiscover);

}  // namespace
}  // namespace gridnode::drivers
