#include "gridnode/drivers/thermal.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "../../drivers/src/thermal/thermal_parse.hpp"
#include "gridnode/platform/log.hpp"
#include "golden.hpp"
#include "temp_dir.hpp"

namespace gridnode::drivers {
namespace {

using gridnode::testing::expect_golden;
using gridnode::testing::FakeTree;
using gridnode::testing::fixture_path;
using gridnode::testing::sweep_ok;
using gridnode::testing::sweep_text;

std::unique_ptr<Driver> driver_at(const std::string& root, bool keep_open = true) {
  ThermalOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.keep_files_open = keep_open;
  return make_thermal_driver(std::move(options));
}

// Whether the sweep's catalog has a series with this label pair.
bool has_label(const Sweep& sweep, std::string_view key, std::string_view value) {
  return std::any_of(
      sweep.catalog->series.begin(), sweep.catalog->series.end(), [&](const Series& s) {
        return std::find(s.labels.begin(), s.labels.end(),
                         std::pair<std::string, std::string>(key, value)) != s.labels.end();
      });
}

// A zone laid out as the kernel does: the class entry is a symlink to the device directory.
void add_zone(FakeTree& tree, int n, std::string_view type, std::string_view temp) {
  std::string dev = "sys/devices/virtual/thermal/thermal_zone" + std::to_string(n);
  tree.write(dev + "/type", std::string(type) + "\n");
  tree.write(dev + "/temp", temp);
  tree.write(dev + "/policy", "step_wise\n");
  tree.symlink("../../devices/virtual/thermal/thermal_zone" + std::to_string(n),
               "sys/class/thermal/thermal_zone" + std::to_string(n));
}

void remove_zone(FakeTree& tree, int n) {
  tree.remove("sys/class/thermal/thermal_zone" + std::to_string(n));
  tree.remove("sys/devices/virtual/thermal/thermal_zone" + std::to_string(n));
}

void add_cooling_device(FakeTree& tree, int n, std::string_view type, std::string_view cur,
                        std::string_view max) {
  std::string dev = "sys/devices/virtual/thermal/cooling_device" + std::to_string(n);
  tree.write(dev + "/type", std::string(type) + "\n");
  tree.write(dev + "/cur_state", cur);
  tree.write(dev + "/max_state", max);
  tree.symlink("../../devices/virtual/thermal/cooling_device" + std::to_string(n),
               "sys/class/thermal/cooling_device" + std::to_string(n));
}

TEST(ThermalParse, ClassIndexFollowsNodeExportersGlob) {
  using thermal::parse_class_index;
  EXPECT_EQ(parse_class_index("thermal_zone0", "thermal_zone"), "0");
  EXPECT_EQ(parse_class_index("thermal_zone10", "thermal_zone"), "10");
  // [0-9]* matches a digit and then anything: the label is the whole rest, as TrimPrefix gives.
  EXPECT_EQ(parse_class_index("thermal_zone1x", "thermal_zone"), "1x");
  EXPECT_EQ(parse_class_index("cooling_device3", "cooling_device"), "3");
  EXPECT_FALSE(parse_class_index("thermal_zone", "thermal_zone"));
  EXPECT_FALSE(parse_class_index("thermal_zonex", "thermal_zone"));
  EXPECT_FALSE(parse_class_index("cooling_device0", "thermal_zone"));
  EXPECT_FALSE(parse_class_index("xthermal_zone0", "thermal_zone"));
}

TEST(ThermalDriver, BasicFixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("thermal/basic"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  // 5 zones (the "disabled" one included, as node_exporter 1.5.0 reports it) + 4 devices * 2.
  EXPECT_EQ(out.readings.size(), 13u);
  expect_golden(sweep_text(out), fixture_path("thermal/basic/expected.prom"));
}

TEST(ThermalDriver, FamiliesMatchNodeExporter) {
  auto driver = driver_at(fixture_path("thermal/basic"));
  Sweep out = sweep_ok(*driver);
  ASSERT_EQ(out.catalog->families.size(), 3u);
  for (const auto& f : out.catalog->families) {
    EXPECT_EQ(f.type, MetricType::gauge);
    if (f.name == "node_thermal_zone_temp") {
      EXPECT_EQ(f.help, "Zone temperature in Celsius");
      EXPECT_EQ(f.scale, (Scale{1, -3}));
    } else if (f.name == "node_cooling_device_cur_state") {
      EXPECT_EQ(f.help, "Current throttle state of the cooling device");
      EXPECT_EQ(f.scale, (Scale{1, 0}));
    } else if (f.name == "node_cooling_device_max_state") {
      EXPECT_EQ(f.help, "Maximum throttle state of the cooling device");
      EXPECT_EQ(f.scale, (Scale{1, 0}));
    } else {
      ADD_FAILURE() << "unexpected family " << f.name;
    }
  }
}

TEST(ThermalDriver, MalformedFixtureSkipsOnlyTheBadReadings) {
  auto driver = driver_at(fixture_path("thermal/malformed"));
  Sweep out = sweep_ok(*driver);
  // thermal_zone1 empty, thermal_zone2 "garbage", cooling_device0 cur_state "abc".
  EXPECT_EQ(out.errors, 3u);
  EXPECT_EQ(out.readings.size(), 2u + 5u);
  expect_golden(sweep_text(out), fixture_path("thermal/malformed/expected.prom"));
  // The same again on the next (steady-state) sweep.
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.errors, 3u);
  EXPECT_EQ(sweep_text(again), sweep_text(out));
}

TEST(ThermalDriver, SourceAbsentIsNoSuchFile) {
  FakeTree tree;
  tree.mkdir("sys/class/hwmon");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto result = driver->sweep(out);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, std::errc::no_such_file_or_directory);
  // Appearing later is picked up by the next sweep.
  add_zone(tree, 0, "acpitz", "30000\n");
  Sweep later = sweep_ok(*driver);
  EXPECT_EQ(sweep_text(later), "node_thermal_zone_temp{type=\"acpitz\",zone=\"0\"} 30\n");
}

TEST(ThermalDriver, EmptyClassDirIsNoReadings) {
  FakeTree tree;
  tree.mkdir("sys/class/thermal");
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_TRUE(out.readings.empty());
  EXPECT_EQ(out.errors, 0u);
  ASSERT_TRUE(out.catalog);
  EXPECT_TRUE(out.catalog->series.empty());
}

TEST(ThermalDriver, ZoneVanishingBetweenSweepsIsCountedThenDropped) {
  FakeTree tree;
  add_zone(tree, 0, "acpitz", "27800\n");
  add_zone(tree, 1, "x86_pkg_temp", "45000\n");
  add_cooling_device(tree, 0, "Processor", "0\n", "3\n");
  // Files reopened per sweep: a removed regular file then fails as a removed sysfs file does
  // (ENOENT on open; a kept-open sysfs file answers ENODEV, which a regular file cannot mimic).
  auto driver = driver_at(tree.root(), /*keep_open=*/false);
  Sweep first = sweep_ok(*driver);
  EXPECT_EQ(first.readings.size(), 4u);
  EXPECT_TRUE(has_label(first, "type", "x86_pkg_temp"));

  remove_zone(tree, 1);
  Sweep second = sweep_ok(*driver);
  EXPECT_EQ(second.errors, 1u);
  EXPECT_EQ(second.readings.size(), 3u);
  EXPECT_EQ(second.catalog, first.catalog);

  Sweep third = sweep_ok(*driver);  // rediscovers
  EXPECT_EQ(third.errors, 0u);
  EXPECT_EQ(third.readings.size(), 3u);
  EXPECT_NE(third.catalog, first.catalog);
  EXPECT_FALSE(has_label(third, "type", "x86_pkg_temp"));
  EXPECT_TRUE(has_label(third, "type", "acpitz"));
}

TEST(ThermalDriver, CatalogPointerStableUntilTheSetChanges) {
  FakeTree tree;
  add_zone(tree, 0, "acpitz", "27800\n");
  add_cooling_device(tree, 0, "Processor", "0\n", "3\n");
  auto driver = driver_at(tree.root());
  Sweep first = sweep_ok(*driver);
  // Values change, the set does not: the pointer stays, across the periodic rediscovery too.
  tree.write("sys/devices/virtual/thermal/thermal_zone0/temp", "28000\n");
  for (int i = 0; i < 130; ++i) {
    Sweep s = sweep_ok(*driver);
    ASSERT_EQ(s.catalog, first.catalog) << "sweep " << i;
    ASSERT_EQ(s.readings.size(), 3u);
  }
  // A zone registered later appears at the next periodic rediscovery, with a new catalog.
  add_zone(tree, 1, "x86_pkg_temp", "45000\n");
  bool seen = false;
  for (int i = 0; i < 61 && !seen; ++i) {
    Sweep s = sweep_ok(*driver);
    seen = has_label(s, "type", "x86_pkg_temp");
    if (seen) {
      EXPECT_NE(s.catalog, first.catalog);
      EXPECT_EQ(s.readings.size(), 4u);
    }
  }
  EXPECT_TRUE(seen);
}

TEST(ThermalDriver, KeptOpenFilesSeeNewValues) {
  FakeTree tree;
  add_zone(tree, 0, "acpitz", "27800\n");
  auto driver = driver_at(tree.root());
  EXPECT_EQ(sweep_text(sweep_ok(*driver)),
            "node_thermal_zone_temp{type=\"acpitz\",zone=\"0\"} 27.8\n");
  tree.write("sys/devices/virtual/thermal/thermal_zone0/temp", "-273150\n");
  EXPECT_EQ(sweep_text(sweep_ok(*driver)),
            "node_thermal_zone_temp{type=\"acpitz\",zone=\"0\"} -273.15\n");
}

TEST(ThermalDriver, BadFilesAreSkippedAndCounted) {
  FakeTree tree;
  add_zone(tree, 0, "acpitz", "27800\n");
  add_zone(tree, 1, "dir", "");
  tree.remove("sys/devices/virtual/thermal/thermal_zone1/temp");
  tree.mkdir("sys/devices/virtual/thermal/thermal_zone1/temp");  // EISDIR, even for root
  add_zone(tree, 2, "dangling", "");
  tree.remove("sys/devices/virtual/thermal/thermal_zone2/temp");
  tree.symlink("nowhere", "sys/devices/virtual/thermal/thermal_zone2/temp");
  add_zone(tree, 3, "fifo", "");
  tree.remove("sys/devices/virtual/thermal/thermal_zone3/temp");
  ASSERT_EQ(
      ::mkfifo((tree.root() + "/sys/devices/virtual/thermal/thermal_zone3/temp").c_str(), 0644), 0);
  add_zone(tree, 4, "huge", "99999999999999999999\n");
  add_zone(tree, 5, "long", std::string(500, '1'));
  // A zone whose type is unreadable has no labels: skipped at discovery, and counted.
  add_zone(tree, 6, "x", "1000\n");
  tree.remove("sys/devices/virtual/thermal/thermal_zone6/type");
  // A class entry that is a dangling link (device gone before its class link).
  tree.symlink("../../devices/virtual/thermal/thermal_zone9", "sys/class/thermal/thermal_zone9");
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(sweep_text(out), "node_thermal_zone_temp{type=\"acpitz\",zone=\"0\"} 27.8\n");
  EXPECT_EQ(out.errors, 5u + 2u);
  // Steady state: only the planned readings fail again; nothing stalls on the FIFO.
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.errors, 5u);
  EXPECT_EQ(again.readings.size(), 1u);
}

TEST(ThermalDriver, UnreadableFileIsSkipped) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads any file";
  }
  FakeTree tree;
  add_zone(tree, 0, "acpitz", "27800\n");
  add_zone(tree, 1, "secret", "");
  tree.write("sys/devices/virtual/thermal/thermal_zone1/temp", "1000\n", 0);
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 1u);
  EXPECT_EQ(out.readings.size(), 1u);
}

TEST(ThermalDriver, BadReadingLogsOnceAndRecovers) {
  FakeTree tree;
  add_zone(tree, 0, "acpitz", "oops\n");
  auto driver = driver_at(tree.root());
  platform::Log::set_threshold(platform::Level::debug);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 3; ++i) {
    Sweep s = sweep_ok(*driver);
    EXPECT_EQ(s.errors, 1u);
    EXPECT_TRUE(s.readings.empty());
  }
  tree.write("sys/devices/virtual/thermal/thermal_zone0/temp", "31000\n");
  Sweep good = sweep_ok(*driver);
  std::string log = ::testing::internal::GetCapturedStderr();
  platform::Log::set_threshold(platform::Level::info);
  EXPECT_EQ(good.errors, 0u);
  EXPECT_EQ(good.readings.size(), 1u);
  std::size_t skipped = 0;
  for (std::size_t pos = log.find("reading skipped"); pos != std::string::npos;
       pos = log.find("reading skipped", pos + 1)) {
    ++skipped;
  }
  EXPECT_EQ(skipped, 1u) << log;
  EXPECT_NE(log.find("thermal: reading skipped"), std::string::npos) << log;
  EXPECT_NE(log.find("reading recovered"), std::string::npos) << log;
}

}  // namespace
}  // namespace gridnode::drivers
