#include "gridnode/drivers/edac.hpp"

#include <gtest/gtest.h>

#include <string>

#include "../../drivers/src/edac/edac_parse.hpp"
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
  EdacOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.keep_files_open = keep_open;
  return make_edac_driver(std::move(options));
}

void add_controller(FakeTree& tree, int mc, std::string_view ce, std::string_view ue) {
  std::string dir = "sys/devices/system/edac/mc/mc" + std::to_string(mc);
  tree.write(dir + "/ce_count", ce);
  tree.write(dir + "/ue_count", ue);
  tree.write(dir + "/ce_noinfo_count", "0\n");
  tree.write(dir + "/ue_noinfo_count", "0\n");
}

TEST(EdacParse, IndexIsTheDigitsNodeExportersRegexpCaptures) {
  using edac::parse_index;
  EXPECT_EQ(parse_index("mc0", "mc"), "0");
  EXPECT_EQ(parse_index("mc10", "mc"), "10");
  EXPECT_EQ(parse_index("csrow2x", "csrow"), "2");  // glob csrow[0-9]* matches, ([0-9]*) = 2
  EXPECT_FALSE(parse_index("mc", "mc"));
  EXPECT_FALSE(parse_index("mcx", "mc"));
  EXPECT_FALSE(parse_index("power", "mc"));
  EXPECT_FALSE(parse_index("dimm0", "csrow"));
}

TEST(EdacDriver, BasicFixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("edac/basic"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  // 3 controllers * 4 + csrows (2 + 0 + 3) * 2; the dimmN counters are not node_exporter 1.5's.
  EXPECT_EQ(out.readings.size(), 12u + 10u);
  std::string text = sweep_text(out);
  EXPECT_TRUE(has_line(text,
                       "node_edac_correctable_errors_total{controller=\"1\"} "
                       "18446744073709551615"));
  EXPECT_TRUE(has_line(
      text, "node_edac_csrow_correctable_errors_total{controller=\"0\",csrow=\"unknown\"} 1"));
  EXPECT_TRUE(has_line(
      text, "node_edac_csrow_correctable_errors_total{controller=\"10\",csrow=\"10\"} 12"));
  expect_golden(text, fixture_path("edac/basic/expected.prom"));
}

TEST(EdacDriver, FamiliesMatchNodeExporter) {
  auto driver = driver_at(fixture_path("edac/basic"));
  Sweep out = sweep_ok(*driver);
  ASSERT_EQ(out.catalog->families.size(), 4u);
  for (const auto& f : out.catalog->families) {
    EXPECT_EQ(f.type, MetricType::counter) << f.name;
    EXPECT_EQ(f.scale, (Scale{1, 0})) << f.name;
    if (f.name == "node_edac_correctable_errors_total") {
      EXPECT_EQ(f.help, "Total correctable memory errors.");
    } else if (f.name == "node_edac_uncorrectable_errors_total") {
      EXPECT_EQ(f.help, "Total uncorrectable memory errors.");
    } else if (f.name == "node_edac_csrow_correctable_errors_total") {
      EXPECT_EQ(f.help, "Total correctable memory errors for this csrow.");
    } else if (f.name == "node_edac_csrow_uncorrectable_errors_total") {
      EXPECT_EQ(f.help, "Total uncorrectable memory errors for this csrow.");
    } else {
      ADD_FAILURE() << "unexpected family " << f.name;
    }
  }
}

TEST(EdacDriver, MalformedFixtureSkipsOnlyTheBadReadings) {
  auto driver = driver_at(fixture_path("edac/malformed"));
  Sweep out = sweep_ok(*driver);
  // mc0 ce_count "seven", ue_noinfo_count "", csrow0 ue_count "-1"; mc1 ue_count > 2^64-1.
  EXPECT_EQ(out.errors, 4u);
  EXPECT_EQ(out.readings.size(), 10u - 4u);
  expect_golden(sweep_text(out), fixture_path("edac/malformed/expected.prom"));
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.errors, 4u);
  EXPECT_EQ(sweep_text(again), sweep_text(out));
}

TEST(EdacDriver, AbsentIsNoSuchFileAndAppearsLater) {
  FakeTree tree;
  tree.mkdir("sys/devices/system");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto result = driver->sweep(out);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, std::errc::no_such_file_or_directory);
  add_controller(tree, 0, "5\n", "0\n");
  Sweep later = sweep_ok(*driver);
  EXPECT_TRUE(
      has_line(sweep_text(later), "node_edac_correctable_errors_total{controller=\"0\"} 5"));
}

TEST(EdacDriver, CountsFollowTheFilesAndAVanishedControllerIsDropped) {
  FakeTree tree;
  add_controller(tree, 0, "1\n", "0\n");
  add_controller(tree, 1, "0\n", "0\n");
  auto driver = driver_at(tree.root(), /*keep_open=*/false);
  Sweep first = sweep_ok(*driver);
  EXPECT_EQ(first.readings.size(), 8u);
  tree.write("sys/devices/system/edac/mc/mc0/ce_count", "2\n");
  tree.remove("sys/devices/system/edac/mc/mc1");
  Sweep second = sweep_ok(*driver);
  EXPECT_TRUE(
      has_line(sweep_text(second), "node_edac_correctable_errors_total{controller=\"0\"} 2"));
  EXPECT_EQ(second.errors, 4u);  // mc1's four files, then a walk
  Sweep third = sweep_ok(*driver);
  EXPECT_EQ(third.errors, 0u);
  EXPECT_EQ(third.readings.size(), 4u);
  EXPECT_NE(third.catalog, first.catalog);
}

TEST(EdacDriver, SteadySweepAllocatesNothing) {
  auto d = driver_at(fixture_path("edac/basic"));
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
