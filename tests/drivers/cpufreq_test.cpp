#include "gridnode/drivers/cpufreq.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "alloc_counter.hpp"
#include "golden.hpp"
#include "temp_dir.hpp"

namespace gridnode::drivers {
namespace {

using gridnode::testing::expect_golden;
using gridnode::testing::FakeTree;
using gridnode::testing::fixture_path;
using gridnode::testing::has_line;
using gridnode::testing::sweep_ok;
using gridnode::testing::sweep_text;

std::unique_ptr<Driver> driver_at(const std::string& root, bool keep_open = true) {
  CpufreqOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.keep_files_open = keep_open;
  return make_cpufreq_driver(std::move(options));
}

// A CPU laid out as the kernel does: cpuN/cpufreq links to ../cpufreq/policyN.
void add_cpu(FakeTree& tree, int n, std::string_view cur_khz,
             std::string_view governor = "powersave",
             std::string_view available = "performance powersave") {
  std::string policy = "sys/devices/system/cpu/cpufreq/policy" + std::to_string(n) + "/";
  tree.write(policy + "cpuinfo_max_freq", "4700000\n");
  tree.write(policy + "cpuinfo_min_freq", "800000\n");
  tree.write(policy + "scaling_cur_freq", std::string(cur_khz) + "\n");
  tree.write(policy + "scaling_max_freq", "4700000\n");
  tree.write(policy + "scaling_min_freq", "800000\n");
  tree.write(policy + "scaling_governor", std::string(governor) + "\n");
  tree.write(policy + "scaling_available_governors", std::string(available) + "\n");
  tree.symlink("../cpufreq/policy" + std::to_string(n),
               "sys/devices/system/cpu/cpu" + std::to_string(n) + "/cpufreq");
}

TEST(CpufreqDriver, IntelPstateFixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("cpufreq/intel_pstate"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  // cpu0..2 (cpu3 is offline: no cpufreq): 5 frequencies (no cpuinfo_cur_freq under
  // intel_pstate) and 2 governors each.
  EXPECT_EQ(out.readings.size(), 3u * (5u + 2u));
  std::string text = sweep_text(out);
  EXPECT_TRUE(has_line(text, "node_cpu_scaling_frequency_hertz{cpu=\"0\"} 3400012000")) << text;
  EXPECT_TRUE(has_line(text, "node_cpu_scaling_governor{cpu=\"2\",governor=\"performance\"} 1"));
  EXPECT_TRUE(has_line(text, "node_cpu_scaling_governor{cpu=\"2\",governor=\"powersave\"} 0"));
  EXPECT_EQ(text.find("cpu=\"3\""), std::string::npos) << text;
  expect_golden(text, fixture_path("cpufreq/intel_pstate/expected.prom"));
}

TEST(CpufreqDriver, AcpiCpufreqFixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("cpufreq/acpi_cpufreq"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  EXPECT_EQ(out.readings.size(), 2u * (6u + 6u));
  std::string text = sweep_text(out);
  EXPECT_TRUE(has_line(text, "node_cpu_frequency_hertz{cpu=\"1\"} 1600000000")) << text;
  EXPECT_TRUE(has_line(text, "node_cpu_scaling_governor{cpu=\"1\",governor=\"userspace\"} 1"));
  expect_golden(text, fixture_path("cpufreq/acpi_cpufreq/expected.prom"));
}

TEST(CpufreqDriver, FamiliesMatchNodeExporter) {
  auto driver = driver_at(fixture_path("cpufreq/acpi_cpufreq"));
  Sweep out = sweep_ok(*driver);
  ASSERT_EQ(out.catalog->families.size(), 7u);
  for (const auto& f : out.catalog->families) {
    EXPECT_EQ(f.type, MetricType::gauge) << f.name;
    if (f.name == "node_cpu_scaling_governor") {
      EXPECT_EQ(f.help, "Current enabled CPU frequency governor.");
      EXPECT_EQ(f.scale, (Scale{1, 0}));
    } else {
      EXPECT_EQ(f.scale, (Scale{1000, 0})) << f.name;
      EXPECT_EQ(f.unit, "Hz");
    }
  }
  EXPECT_EQ(out.catalog->families[0].name, "node_cpu_frequency_hertz");
  EXPECT_EQ(out.catalog->families[0].help, "Current cpu thread frequency in hertz.");
  EXPECT_EQ(out.catalog->families[4].name, "node_cpu_scaling_frequency_min_hertz");
  EXPECT_EQ(out.catalog->families[4].help, "Minimum scaled CPU thread frequency in hertz.");
}

TEST(CpufreqDriver, GovernorChangeIsSeenAtOnce) {
  FakeTree tree;
  add_cpu(tree, 0, "800000");
  auto driver = driver_at(tree.root());
  std::string before = sweep_text(sweep_ok(*driver));
  EXPECT_TRUE(has_line(before, "node_cpu_scaling_governor{cpu=\"0\",governor=\"powersave\"} 1"));
  tree.write("sys/devices/system/cpu/cpufreq/policy0/scaling_governor", "performance\n");
  tree.write("sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq", "4700000\n");
  std::string after = sweep_text(sweep_ok(*driver));
  EXPECT_TRUE(has_line(after, "node_cpu_scaling_governor{cpu=\"0\",governor=\"powersave\"} 0"));
  EXPECT_TRUE(has_line(after, "node_cpu_scaling_governor{cpu=\"0\",governor=\"performance\"} 1"));
  EXPECT_TRUE(has_line(after, "node_cpu_scaling_frequency_hertz{cpu=\"0\"} 4700000000"));
  // A governor that is not among the available ones: every series 0, as node_exporter 1.6.
  tree.write("sys/devices/system/cpu/cpufreq/policy0/scaling_governor", "ondemand\n");
  std::string odd = sweep_text(sweep_ok(*driver));
  EXPECT_TRUE(has_line(odd, "node_cpu_scaling_governor{cpu=\"0\",governor=\"powersave\"} 0"));
  EXPECT_TRUE(has_line(odd, "node_cpu_scaling_governor{cpu=\"0\",governor=\"performance\"} 0"));
}

TEST(CpufreqDriver, OnlyCpuNEntriesWithCpufreqCount) {
  FakeTree tree;
  add_cpu(tree, 0, "800000");
  add_cpu(tree, 10, "900000");
  tree.write("sys/devices/system/cpu/cpu1/online", "0\n");  // offline: no cpufreq
  tree.write("sys/devices/system/cpu/cpuidle/current_driver", "intel_idle\n");
  tree.write("sys/devices/system/cpu/cpufreq/boost", "1\n");
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  EXPECT_EQ(out.readings.size(), 2u * 7u);
  std::string text = sweep_text(out);
  EXPECT_TRUE(has_line(text, "node_cpu_scaling_frequency_hertz{cpu=\"10\"} 900000000")) << text;
}

TEST(CpufreqDriver, BadValuesAreSkippedAndCounted) {
  FakeTree tree;
  add_cpu(tree, 0, "garbage");
  tree.write("sys/devices/system/cpu/cpufreq/policy0/scaling_min_freq", "-5\n");
  tree.write("sys/devices/system/cpu/cpufreq/policy0/scaling_governor", "\n");
  auto driver = driver_at(tree.root());
  for (int i = 0; i < 2; ++i) {
    Sweep out = sweep_ok(*driver);
    EXPECT_EQ(out.errors, 3u);
    EXPECT_EQ(out.readings.size(), 3u);  // cpuinfo min/max, scaling max
  }
  tree.write("sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq", "1000000\n");
  Sweep fixed = sweep_ok(*driver);
  EXPECT_EQ(fixed.errors, 2u);
  EXPECT_TRUE(
      has_line(sweep_text(fixed), "node_cpu_scaling_frequency_hertz{cpu=\"0\"} 1000000000"));
}

TEST(CpufreqDriver, UnreadableCurFreqIsLeftOutNotCounted) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads any file";
  }
  FakeTree tree;
  add_cpu(tree, 0, "800000");
  tree.write("sys/devices/system/cpu/cpufreq/policy0/cpuinfo_cur_freq", "800000\n", 0);
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  EXPECT_EQ(sweep_text(out).find("node_cpu_frequency_hertz"), std::string::npos);
}

TEST(CpufreqDriver, CpuGoingOfflineIsDroppedAfterRediscovery) {
  FakeTree tree;
  add_cpu(tree, 0, "800000");
  add_cpu(tree, 1, "800000");
  auto driver = driver_at(tree.root(), /*keep_open=*/false);
  Sweep first = sweep_ok(*driver);
  EXPECT_EQ(first.readings.size(), 14u);
  tree.remove("sys/devices/system/cpu/cpu1/cpufreq");
  tree.remove("sys/devices/system/cpu/cpufreq/policy1");
  Sweep second = sweep_ok(*driver);
  EXPECT_EQ(second.errors, 6u);  // its six readings vanished; a walk is requested
  Sweep third = sweep_ok(*driver);
  EXPECT_EQ(third.errors, 0u);
  EXPECT_EQ(third.readings.size(), 7u);
  EXPECT_NE(third.catalog, first.catalog);
}

TEST(CpufreqDriver, AbsentIsNoSuchFile) {
  FakeTree tree;
  tree.mkdir("sys/devices/system");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto r = driver->sweep(out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST(CpufreqDriver, SteadySweepAllocatesNothing) {
  auto d = driver_at(fixture_path("cpufreq/acpi_cpufreq"));
  Sweep s = sweep_ok(*d);
  std::size_t n = s.readings.size();
  s.reset();
  ASSERT_TRUE(d->sweep(s));
  s.reset();
  testing::AllocationCounter allocations;
  allocations.start();
  auto r = d->sweep(s);
  std::size_t allocated = allocations.stop();
  ASSERT_TRUE(r);
  EXPECT_EQ(allocated, 0u);
  EXPECT_EQ(s.readings.size(), n);
}

}  // namespace
}  // namespace gridnode::drivers
