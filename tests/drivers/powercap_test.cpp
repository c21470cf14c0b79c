#include "gridnode/drivers/powercap.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <string>

#include "../../drivers/src/powercap/rapl.hpp"
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
using powercap::EnergyCounter;

constexpr std::uint64_t kMax = 262143328850;  // a client package's max_energy_range_uj

std::unique_ptr<Driver> driver_at(const std::string& root, bool keep_open = true) {
  PowercapOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.keep_files_open = keep_open;
  return make_powercap_driver(std::move(options));
}

// The `path` label holds the (machine-dependent) sysfs root: goldens spell it <sysfs>.
std::string portable_text(const Sweep& sweep, const std::string& root) {
  std::string text = sweep_text(sweep);
  const std::string sysfs = powercap::clean_path(root + "/sys");
  for (auto pos = text.find(sysfs); pos != std::string::npos; pos = text.find(sysfs, pos)) {
    text.replace(pos, sysfs.size(), "<sysfs>");
  }
  return text;
}

// The one reading of the series whose path label ends in /<zone>; fails the test if absent.
std::uint64_t value_of(const Sweep& sweep, std::string_view zone) {
  std::string suffix = "/" + std::string(zone);
  for (const auto& r : sweep.readings) {
    for (const auto& [k, v] : sweep.catalog->series[r.series].labels) {
      if (k == "path" && v.size() >= suffix.size() &&
          v.compare(v.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return r.value.bits;
      }
    }
  }
  ADD_FAILURE() << "no reading for " << zone;
  return 0;
}

bool has_zone(const Sweep& sweep, std::string_view zone) {
  std::string suffix = "/" + std::string(zone);
  return std::any_of(sweep.catalog->series.begin(), sweep.catalog->series.end(),
                     [&](const Series& s) {
                       return std::any_of(s.labels.begin(), s.labels.end(), [&](const auto& kv) {
                         return kv.first == "path" && kv.second.size() >= suffix.size() &&
                                kv.second.ends_with(suffix);
                       });
                     });
}

// A zone laid out as the kernel does: devices/virtual/powercap/<control>/<zone...>, with a flat
// class/powercap/<zone> symlink. `max` empty leaves max_energy_range_uj out.
void add_zone(FakeTree& tree, std::string_view rel, std::string_view name, std::string_view energy,
              std::string_view max = "262143328850\n") {
  std::string dev = "sys/devices/virtual/powercap/" + std::string(rel);
  tree.write(dev + "/name", std::string(name) + "\n");
  tree.write(dev + "/energy_uj", energy);
  if (!max.empty()) {
    tree.write(dev + "/max_energy_range_uj", max);
  }
  std::string zone(rel.substr(rel.rfind('/') + 1));
  tree.symlink("../../devices/virtual/powercap/" + std::string(rel), "sys/class/powercap/" + zone);
}

std::string energy_path(std::string_view rel) {
  return "sys/devices/virtual/powercap/" + std::string(rel) + "/energy_uj";
}

TEST(RaplParse, SanitizeMetricNameAsNodeExporter) {
  using powercap::sanitize_metric_name;
  EXPECT_EQ(sanitize_metric_name("package"), "package");
  EXPECT_EQ(sanitize_metric_name("package-0-die-1"), "package_0_die_1");
  EXPECT_EQ(sanitize_metric_name("_a..b_-c"), "_a_b_c");  // checked against 1.5.0
  EXPECT_EQ(sanitize_metric_name("a__b"), "a__b");
  EXPECT_EQ(sanitize_metric_name("a__.__b"), "a_b");
  EXPECT_EQ(sanitize_metric_name("x-"), "x_");
  EXPECT_EQ(sanitize_metric_name("-x"), "_x");
  EXPECT_EQ(sanitize_metric_name("caf\xc3\xa9 1"), "caf_1");
  EXPECT_EQ(sanitize_metric_name(""), "");
}

TEST(RaplParse, AtoiAsGo) {
  using powercap::parse_atoi;
  EXPECT_EQ(parse_atoi("0"), 0);
  EXPECT_EQ(parse_atoi("12"), 12);
  EXPECT_EQ(parse_atoi("+3"), 3);
  EXPECT_EQ(parse_atoi("-3"), -3);
  EXPECT_EQ(parse_atoi("007"), 7);
  EXPECT_EQ(parse_atoi("-9223372036854775808"), std::numeric_limits<std::int64_t>::min());
  EXPECT_FALSE(parse_atoi("9223372036854775808"));
  EXPECT_FALSE(parse_atoi(""));
  EXPECT_FALSE(parse_atoi("-"));
  EXPECT_FALSE(parse_atoi("1a"));
  EXPECT_FALSE(parse_atoi(" 1"));
  EXPECT_FALSE(parse_atoi("+-1"));
}

TEST(RaplParse, CleanPathAsGo) {
  using powercap::clean_path;
  EXPECT_EQ(clean_path("/sys/class/powercap"), "/sys/class/powercap");
  EXPECT_EQ(clean_path("/tmp/x//sys/class/powercap"), "/tmp/x/sys/class/powercap");
  EXPECT_EQ(clean_path("/tmp/x/sys/"), "/tmp/x/sys");
  EXPECT_EQ(clean_path("/a/./b/../c"), "/a/c");
  EXPECT_EQ(clean_path("/../a"), "/a");
  EXPECT_EQ(clean_path("../a/../../b"), "../../b");
  EXPECT_EQ(clean_path("./sys"), "sys");
  EXPECT_EQ(clean_path(""), ".");
  EXPECT_EQ(clean_path("/"), "/");
}

TEST(RaplParse, NamerAsProcfsGetRaplZones) {
  powercap::RaplNamer namer;
  using P = std::pair<std::int64_t, std::string>;
  EXPECT_EQ(namer.next("package-0"), (P{0, "package"}));
  EXPECT_EQ(namer.next("core"), (P{0, "core"}));
  EXPECT_EQ(namer.next("dram"), (P{0, "dram"}));
  EXPECT_EQ(namer.next("package-1"), (P{1, "package"}));
  EXPECT_EQ(namer.next("core"), (P{1, "core"}));
  EXPECT_EQ(namer.next("dram"), (P{1, "dram"}));
  EXPECT_EQ(namer.next("psys"), (P{0, "psys"}));
  // More than one '-', or a suffix that is no integer: the name stays whole.
  EXPECT_EQ(namer.next("package-0-die-1"), (P{0, "package-0-die-1"}));
  EXPECT_EQ(namer.next("package-0-die-1"), (P{1, "package-0-die-1"}));
  EXPECT_EQ(namer.next("foo-bar"), (P{0, "foo-bar"}));
  // A suffixed name sets the count of its base: "dram-5" then "dram" gives 6.
  EXPECT_EQ(namer.next("dram-5"), (P{5, "dram"}));
  EXPECT_EQ(namer.next("dram"), (P{6, "dram"}));
}

TEST(EnergyCounterTest, FirstReadingIsRawThenWrapsAddTheRange) {
  EnergyCounter c;
  const std::uint64_t max = 1000;
  EXPECT_EQ(c.update(900, max), 900u);
  EXPECT_EQ(c.update(950, max), 950u);
  EXPECT_EQ(c.update(50, max), 1051u);  // 950 -> 1000 -> 0 -> 50: 101 µJ later
  EXPECT_EQ(c.update(50, max), 1051u);  // unchanged is no wrap
  EXPECT_EQ(c.update(1000, max), 2001u);
  EXPECT_EQ(c.update(0, max), 2002u);  // 1000 -> 0 is one µJ
  EXPECT_EQ(c.update(999, max), 3001u);
  EXPECT_EQ(c.update(3, max), 3006u);  // 999 -> 1000 -> 0 -> 3: 5 µJ later
}

TEST(EnergyCounterTest, WithoutARangeAGoingBackIsAReset) {
  EnergyCounter c;
  EXPECT_EQ(c.update(500, std::nullopt), 500u);
  EXPECT_EQ(c.update(700, std::nullopt), 700u);
  EXPECT_EQ(c.update(10, std::nullopt), 10u);
  EXPECT_EQ(c.update(20, std::nullopt), 20u);
  // A zero range cannot size a wrap either.
  EnergyCounter z;
  EXPECT_EQ(z.update(5, 0), 5u);
  EXPECT_EQ(z.update(1, 0), 1u);
  // A previous reading above the range means the range is wrong: a reset, not a wrap.
  EnergyCounter above;
  EXPECT_EQ(above.update(2000, 1000), 2000u);
  EXPECT_EQ(above.update(10, 1000), 10u);
  // After a reset, wraps count again from there.
  EXPECT_EQ(above.update(990, 1000), 990u);
  EXPECT_EQ(above.update(5, 1000), 1006u);
}

TEST(EnergyCounterTest, ExactAbove2To63AndAtTheFull64BitRange) {
  const std::uint64_t big = 10'000'000'000'000'000'000ull;  // above 2^63
  EnergyCounter c;
  EXPECT_EQ(c.update(big - 5, big), big - 5);
  EXPECT_EQ(c.update(3, big), big + 1 + 3);  // 17 µJ later, reported above 2^63
  const std::uint64_t top = std::numeric_limits<std::uint64_t>::max();
  EnergyCounter full;
  EXPECT_EQ(full.update(top - 1, top), top - 1);
  EXPECT_EQ(full.update(top, top), top);
  // A 64-bit counter wrapping: max + 1 is 2^64, and so is the modulus of what we report.
  EXPECT_EQ(full.update(2, top), 2u);
}

TEST(PowercapDriver, BasicFixtureMatchesGolden) {
  const std::string root = fixture_path("powercap/basic");
  auto driver = driver_at(root);
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  EXPECT_EQ(out.readings.size(), 6u);
  expect_golden(portable_text(out, root), fixture_path("powercap/basic/expected.prom"));
  // HELP texts as node_exporter 1.5.0 prints them for this tree.
  std::set<std::pair<std::string, std::string>> helps;
  for (const auto& f : out.catalog->families) {
    EXPECT_EQ(f.type, MetricType::counter);
    EXPECT_EQ(f.scale, (Scale{1, -6}));
    EXPECT_EQ(f.unit, "J");
    helps.emplace(f.name, f.help);
  }
  std::set<std::pair<std::string, std::string>> want{
      {"node_rapl_core_joules_total", "Current RAPL core value in joules"},
      {"node_rapl_dram_joules_total", "Current RAPL dram value in joules"},
      {"node_rapl_package_joules_total", "Current RAPL package value in joules"},
      {"node_rapl_psys_joules_total", "Current RAPL psys value in joules"},
      {"node_rapl_uncore_joules_total", "Current RAPL uncore value in joules"}};
  EXPECT_EQ(helps, want);
}

TEST(PowercapDriver, DualSocketFixtureMatchesGolden) {
  const std::string root = fixture_path("powercap/dual_socket");
  auto driver = driver_at(root);
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  expect_golden(portable_text(out, root), fixture_path("powercap/dual_socket/expected.prom"));
}

TEST(PowercapDriver, MalformedFixtureSkipsOnlyTheBadReadings) {
  const std::string root = fixture_path("powercap/malformed");
  auto driver = driver_at(root);
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 2u);  // intel-rapl:0:0 empty, intel-rapl:0:1 "12x34"
  EXPECT_EQ(out.readings.size(), 3u);
  expect_golden(portable_text(out, root), fixture_path("powercap/malformed/expected.prom"));
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.errors, 2u);
  EXPECT_EQ(sweep_text(again), sweep_text(out));
}

TEST(PowercapDriver, PathLabelIsCleanedAsNodeExporterDoes) {
  FakeTree tree;
  add_zone(tree, "intel-rapl/intel-rapl:0", "package-0", "5\n");
  PowercapOptions options;
  options.roots.sysfs = tree.root() + "//sys/";
  auto driver = make_powercap_driver(std::move(options));
  Sweep out = sweep_ok(*driver);
  ASSERT_EQ(out.readings.size(), 1u);
  EXPECT_EQ(sweep_text(out), "node_rapl_package_joules_total{index=\"0\",path=\"" + tree.root() +
                                 "/sys/class/powercap/intel-rapl:0\"} 0.000005\n");
}

TEST(PowercapDriver, CounterKeepsIncreasingAcrossWraps) {
  FakeTree tree;
  add_zone(tree, "intel-rapl/intel-rapl:0", "package-0", "262143000000\n");
  add_zone(tree, "intel-rapl/intel-rapl:0/intel-rapl:0:0", "core", "100\n", "1000\n");
  auto driver = driver_at(tree.root());
  EXPECT_EQ(value_of(sweep_ok(*driver), "intel-rapl:0"), 262143000000u);  // raw at first

  std::uint64_t expected = 262143000000;
  std::uint64_t last_raw = expected;
  // Several wraps, each one read after the counter went round once.
  for (std::uint64_t raw : {5000000ull, 262000000000ull, 1ull, 262143328850ull, 0ull, 7ull}) {
    expected += raw >= last_raw ? raw - last_raw : (kMax - last_raw) + 1 + raw;
    last_raw = raw;
    tree.write(energy_path("intel-rapl/intel-rapl:0"), std::to_string(raw) + "\n");
    Sweep s = sweep_ok(*driver);
    EXPECT_EQ(s.errors, 0u);
    EXPECT_EQ(value_of(s, "intel-rapl:0"), expected) << "raw " << raw;
  }
  // The small-range subzone wrapped independently.
  tree.write(energy_path("intel-rapl/intel-rapl:0/intel-rapl:0:0"), "40\n");
  EXPECT_EQ(value_of(sweep_ok(*driver), "intel-rapl:0:0"), 1041u);
}

TEST(PowercapDriver, CounterAbove2To63IsExact) {
  FakeTree tree;
  const std::string max = "18446744073709551615\n";
  add_zone(tree, "intel-rapl/intel-rapl:0", "package-0", "9223372036854775809\n", max);
  auto driver = driver_at(tree.root());
  Sweep first = sweep_ok(*driver);
  EXPECT_EQ(first.errors, 0u);
  EXPECT_EQ(value_of(first, "intel-rapl:0"), 9223372036854775809u);
  EXPECT_NE(portable_text(first, tree.root()).find("} 9223372036854.775809\n"), std::string::npos);
  tree.write(energy_path("intel-rapl/intel-rapl:0"), "18446744073709551615\n");
  EXPECT_EQ(value_of(sweep_ok(*driver), "intel-rapl:0"), 18446744073709551615u);
}

TEST(PowercapDriver, GoingBackWithoutARangeIsAReset) {
  FakeTree tree;
  add_zone(tree, "intel-rapl/intel-rapl:1", "psys", "5000\n", "");
  add_zone(tree, "intel-rapl/intel-rapl:2", "dram", "5000\n", "garbage\n");
  auto driver = driver_at(tree.root());
  EXPECT_EQ(value_of(sweep_ok(*driver), "intel-rapl:1"), 5000u);
  tree.write(energy_path("intel-rapl/intel-rapl:1"), "6000\n");
  tree.write(energy_path("intel-rapl/intel-rapl:2"), "6000\n");
  sweep_ok(*driver);
  tree.write(energy_path("intel-rapl/intel-rapl:1"), "10\n");
  tree.write(energy_path("intel-rapl/intel-rapl:2"), "20\n");
  Sweep s = sweep_ok(*driver);
  EXPECT_EQ(s.errors, 0u);  // an unknown range costs the correction, not the reading
  EXPECT_EQ(value_of(s, "intel-rapl:1"), 10u);
  EXPECT_EQ(value_of(s, "intel-rapl:2"), 20u);
}

TEST(PowercapDriver, CounterStateSurvivesRediscovery) {
  FakeTree tree;
  add_zone(tree, "intel-rapl/intel-rapl:0", "package-0", "900\n", "1000\n");
  auto driver = driver_at(tree.root());
  Sweep first = sweep_ok(*driver);
  tree.write(energy_path("intel-rapl/intel-rapl:0"), "100\n");
  EXPECT_EQ(value_of(sweep_ok(*driver), "intel-rapl:0"), 1101u);
  // Well past the periodic rediscovery: the wrap offset and the catalog pointer are kept.
  for (int i = 0; i < 130; ++i) {
    Sweep s = sweep_ok(*driver);
    ASSERT_EQ(s.catalog, first.catalog);
    ASSERT_EQ(value_of(s, "intel-rapl:0"), 1101u);
  }
  tree.write(energy_path("intel-rapl/intel-rapl:0"), "50\n");
  EXPECT_EQ(value_of(sweep_ok(*driver), "intel-rapl:0"), 2052u);
}

TEST(PowercapDriver, SourceAbsentIsNoSuchFile) {
  FakeTree tree;
  tree.mkdir("sys/class/thermal");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto result = driver->sweep(out);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, std::errc::no_such_file_or_directory);
}

TEST(PowercapDriver, ControlTypesOnlyIsNoReadings) {
  FakeTree tree;
  tree.write("sys/devices/virtual/powercap/intel-rapl/enabled", "0\n");
  tree.symlink("../../devices/virtual/powercap/intel-rapl", "sys/class/powercap/intel-rapl");
  tree.write("sys/class/powercap/stray-file", "x\n");
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  EXPECT_TRUE(out.readings.empty());
}

TEST(PowercapDriver, ZoneVanishingBetweenSweepsIsCountedThenDropped) {
  FakeTree tree;
  add_zone(tree, "intel-rapl/intel-rapl:0", "package-0", "1000\n");
  add_zone(tree, "intel-rapl/intel-rapl:0/intel-rapl:0:0", "core", "500\n");
  add_zone(tree, "intel-rapl/intel-rapl:1", "package-1", "2000\n");
  // Files reopened per sweep, so that a removed regular file fails as a removed sysfs one does.
  auto driver = driver_at(tree.root(), /*keep_open=*/false);
  Sweep first = sweep_ok(*driver);
  EXPECT_EQ(first.readings.size(), 3u);

  tree.remove("sys/class/powercap/intel-rapl:1");
  tree.remove("sys/devices/virtual/powercap/intel-rapl/intel-rapl:1");
  Sweep second = sweep_ok(*driver);
  EXPECT_EQ(second.errors, 1u);
  EXPECT_EQ(second.readings.size(), 2u);

  Sweep third = sweep_ok(*driver);
  EXPECT_EQ(third.errors, 0u);
  EXPECT_EQ(third.readings.size(), 2u);
  EXPECT_NE(third.catalog, first.catalog);
  EXPECT_FALSE(has_zone(third, "intel-rapl:1"));
  EXPECT_TRUE(has_zone(third, "intel-rapl:0:0"));
  EXPECT_EQ(value_of(third, "intel-rapl:0"), 1000u);
}

TEST(PowercapDriver, BadFilesAreSkippedAndCounted) {
  FakeTree tree;
  add_zone(tree, "intel-rapl/intel-rapl:0", "package-0", "1000\n");
  add_zone(tree, "intel-rapl/intel-rapl:1", "package-1", "");
  tree.remove(energy_path("intel-rapl/intel-rapl:1"));
  tree.mkdir(energy_path("intel-rapl/intel-rapl:1"));  // EISDIR, even for root
  add_zone(tree, "intel-rapl/intel-rapl:2", "psys", "18446744073709551616\n");  // > 64 bits
  add_zone(tree, "intel-rapl/intel-rapl:3", "dram", "-5\n");
  // A zone whose name is unreadable cannot be named: skipped at discovery, counted.
  add_zone(tree, "intel-rapl/intel-rapl:4", "x", "1\n");
  tree.remove("sys/devices/virtual/powercap/intel-rapl/intel-rapl:4/name");
  tree.mkdir("sys/devices/virtual/powercap/intel-rapl/intel-rapl:4/name");
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.readings.size(), 1u);
  EXPECT_EQ(out.errors, 3u + 1u);
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.errors, 3u);
  EXPECT_EQ(value_of(again, "intel-rapl:0"), 1000u);
}

TEST(PowercapDriver, RootOnlyEnergyIsCountedAndWarnedOnce) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads any file";
  }
  FakeTree tree;
  add_zone(tree, "intel-rapl/intel-rapl:0", "package-0", "");
  tree.write(energy_path("intel-rapl/intel-rapl:0"), "1000\n", 0);  // 0400 root:root since 5.10
  add_zone(tree, "intel-rapl/intel-rapl:0/intel-rapl:0:0", "core", "");
  tree.write(energy_path("intel-rapl/intel-rapl:0/intel-rapl:0:0"), "1000\n", 0);
  add_zone(tree, "intel-rapl-mmio/intel-rapl-mmio:0", "package-0", "1234\n");
  auto driver = driver_at(tree.root());
  ::testing::internal::CaptureStderr();
  Sweep out = sweep_ok(*driver);
  Sweep again = sweep_ok(*driver);
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.errors, 2u);
  EXPECT_EQ(again.errors, 2u);
  EXPECT_EQ(value_of(again, "intel-rapl-mmio:0"), 1234u);
  EXPECT_EQ(log.find("CAP_DAC_READ_SEARCH"), log.rfind("CAP_DAC_READ_SEARCH")) << log;
  EXPECT_NE(log.find("CAP_DAC_READ_SEARCH"), std::string::npos) << log;
}

}  // namespace
}  // namespace gridnode::drivers
