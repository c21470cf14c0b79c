#include "gridnode/drivers/pcie.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "../../drivers/src/pcie/aer_parse.hpp"
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
  PcieOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.keep_files_open = keep_open;
  return make_pcie_driver(std::move(options));
}

constexpr std::string_view kCorrectable =
    "RxErr 0\nBadTLP 0\nBadDLLP 0\nRollover 0\nTimeout 0\nNonFatalErr 0\nCorrIntErr 0\n"
    "HeaderOF 0\nTOTAL_ERR_COR 0\n";

void add_device(FakeTree& tree, std::string_view bdf, std::string_view correctable) {
  std::string dir = "sys/devices/pci0000:00/" + std::string(bdf);
  tree.write(dir + "/aer_dev_correctable", correctable);
  tree.write(dir + "/aer_dev_nonfatal", "Undefined 0\nDLP 0\nTOTAL_ERR_NONFATAL 0\n");
  tree.write(dir + "/aer_dev_fatal", "Undefined 0\nDLP 0\nTOTAL_ERR_FATAL 0\n");
  tree.symlink("../../../devices/pci0000:00/" + std::string(bdf),
               "sys/bus/pci/devices/" + std::string(bdf));
}

TEST(AerParse, LinesAreNameAndCount) {
  pcie::AerReader reader("RxErr 3\ndev_cor_errs_bit[4] 2\n\nTOTAL_ERR_COR 5\nodd\n");
  pcie::AerLine line;
  ASSERT_TRUE(reader.next(line));
  EXPECT_EQ(line.name, "RxErr");
  EXPECT_EQ(line.count, "3");
  EXPECT_FALSE(line.total);
  ASSERT_TRUE(reader.next(line));
  EXPECT_EQ(line.name, "dev_cor_errs_bit[4]");
  ASSERT_TRUE(reader.next(line));
  EXPECT_EQ(line.name, "TOTAL_ERR_COR");
  EXPECT_TRUE(line.total);
  ASSERT_TRUE(reader.next(line));
  EXPECT_EQ(line.name, "odd");
  EXPECT_TRUE(line.count.empty());
  EXPECT_FALSE(reader.next(line));
  EXPECT_EQ(pcie::aer_severity("aer_dev_nonfatal"), "nonfatal");
  EXPECT_TRUE(pcie::aer_severity("aer_dev_other").empty());
}

TEST(PcieDriver, GarbageFilesAreCountedNeverFatal) {
  FakeTree tree;
  add_device(tree, "0000:17:00.0", kCorrectable);
  auto driver = driver_at(tree.root());
  ASSERT_EQ(sweep_ok(*driver).errors, 0u);
  std::mt19937 rng(7);  // fixed: the same garbage every run
  for (int round = 0; round < 200; ++round) {
    std::string junk(rng() % 600, '\0');
    for (auto& c : junk) {
      c = static_cast<char>(rng() % 256);
    }
    tree.write("sys/devices/pci0000:00/0000:17:00.0/aer_dev_correctable", junk);
    Sweep out = sweep_ok(*driver);
    ASSERT_TRUE(out.catalog);
    for (const auto& r : out.readings) {
      ASSERT_LT(r.series, out.catalog->series.size());
    }
  }
  // Back to a sane file: read again (after the walks the garbage caused), no errors.
  tree.write("sys/devices/pci0000:00/0000:17:00.0/aer_dev_correctable", kCorrectable);
  sweep_ok(*driver);
  Sweep good = sweep_ok(*driver);
  EXPECT_EQ(good.errors, 0u);
  EXPECT_EQ(good.readings.size(), 9u + 3u + 3u);
}

TEST(PcieDriver, BasicFixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("pcie/basic"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  std::string text = sweep_text(out);
  EXPECT_TRUE(has_line(text,
                       "gridnode_pcie_aer_errors_total{device=\"0000:17:00.0\",error=\"BadTLP\","
                       "severity=\"correctable\"} 12"));
  EXPECT_TRUE(has_line(text,
                       "gridnode_pcie_aer_errors_total{device=\"0000:17:00.0\",error=\"dev_cor_"
                       "errs_bit[4]\",severity=\"correctable\"} 2"));
  EXPECT_TRUE(has_line(
      text, "gridnode_pcie_aer_messages_total{device=\"0000:17:00.0\",severity=\"fatal\"} 1"));
  EXPECT_TRUE(has_line(text,
                       "gridnode_pcie_aer_rootport_messages_total{device=\"0000:00:01.0\","
                       "severity=\"nonfatal\"} 1"));
  EXPECT_TRUE(has_line(text,
                       "gridnode_pcie_aer_messages_total{device=\"0000:3b:00.0\",severity="
                       "\"correctable\"} 18446744073709551615"));
  // Devices without AER (host bridge, USB) have no series.
  EXPECT_EQ(text.find("0000:00:00.0"), std::string::npos);
  EXPECT_EQ(text.find("0000:00:14.0"), std::string::npos);
  for (const auto& f : out.catalog->families) {
    EXPECT_EQ(f.type, MetricType::counter) << f.name;
    EXPECT_EQ(f.name.rfind("gridnode_pcie_aer_", 0), 0u) << f.name;
  }
  expect_golden(text, fixture_path("pcie/basic/expected.prom"));
}

TEST(PcieDriver, MalformedFixtureSkipsOnlyTheBadParts) {
  auto driver = driver_at(fixture_path("pcie/malformed"));
  Sweep out = sweep_ok(*driver);
  // 0000:00:01.0: correctable "RxErr zero" (its other lines stay), nonfatal empty (at
  // discovery), fatal a line without a count, root port "x" and a count beyond 2^64-1.
  EXPECT_EQ(out.errors, 5u);
  std::string text = sweep_text(out);
  EXPECT_TRUE(has_line(text,
                       "gridnode_pcie_aer_errors_total{device=\"0000:00:01.0\",error=\"BadTLP\","
                       "severity=\"correctable\"} 1"));
  expect_golden(text, fixture_path("pcie/malformed/expected.prom"));
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.errors, 4u);
  EXPECT_EQ(sweep_text(again), text);
}

TEST(PcieDriver, CountsFollowAndANewLineRebuildsTheCatalog) {
  FakeTree tree;
  add_device(tree, "0000:17:00.0", kCorrectable);
  auto driver = driver_at(tree.root());
  Sweep first = sweep_ok(*driver);
  EXPECT_EQ(first.readings.size(), 9u + 3u + 3u);
  tree.write("sys/devices/pci0000:00/0000:17:00.0/aer_dev_correctable",
             "RxErr 1\nBadTLP 0\nBadDLLP 0\nRollover 0\nTimeout 0\nNonFatalErr 0\nCorrIntErr 0\n"
             "HeaderOF 0\nTOTAL_ERR_COR 1\n");
  Sweep counted = sweep_ok(*driver);
  EXPECT_EQ(counted.catalog, first.catalog);
  EXPECT_TRUE(has_line(sweep_text(counted),
                       "gridnode_pcie_aer_errors_total{device=\"0000:17:00.0\",error=\"RxErr\","
                       "severity=\"correctable\"} 1"));
  // A bit without a name starts counting: the kernel shows a new line.
  tree.write("sys/devices/pci0000:00/0000:17:00.0/aer_dev_correctable",
             "RxErr 1\ndev_cor_errs_bit[1] 4\nBadTLP 0\nBadDLLP 0\nRollover 0\nTimeout 0\n"
             "NonFatalErr 0\nCorrIntErr 0\nHeaderOF 0\nTOTAL_ERR_COR 5\n");
  Sweep changed = sweep_ok(*driver);
  EXPECT_EQ(changed.errors, 0u);
  EXPECT_EQ(changed.catalog, first.catalog);  // the lines before the new one are still read
  Sweep rebuilt = sweep_ok(*driver);
  EXPECT_NE(rebuilt.catalog, first.catalog);
  EXPECT_EQ(rebuilt.readings.size(), 10u + 3u + 3u);
  EXPECT_TRUE(has_line(sweep_text(rebuilt),
                       "gridnode_pcie_aer_messages_total{device=\"0000:17:00.0\",severity="
                       "\"correctable\"} 5"));
}

TEST(PcieDriver, AbsentIsNoSuchFile) {
  FakeTree tree;
  tree.mkdir("sys/bus");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto result = driver->sweep(out);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, std::errc::no_such_file_or_directory);
}

TEST(PcieDriver, SteadySweepAllocatesNothing) {
  auto d = driver_at(fixture_path("pcie/basic"));
  Sweep s = sweep_ok(*d);
  std::size_t n = s.readings.size();
  ASSERT_GT(n, 80u);
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
