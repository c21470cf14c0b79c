#include "gridnode/drivers/nvme.hpp"

#include <gtest/gtest.h>

#include <string>

#include "alloc_counter.hpp"
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
  NvmeOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.keep_files_open = keep_open;
  return make_nvme_driver(std::move(options));
}

void add_controller(FakeTree& tree, std::string_view name, std::string_view state) {
  std::string dir = "sys/class/nvme/" + std::string(name);
  tree.write(dir + "/firmware_rev", "GDC5602Q\n");
  tree.write(dir + "/model", "SAMSUNG MZQL23T8HCLS-00A07              \n");
  tree.write(dir + "/serial", "S64HNE0T512345      \n");
  tree.write(dir + "/state", std::string(state) + "\n");
}

TEST(NvmeDriver, BasicFixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("nvme/basic"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  EXPECT_EQ(out.readings.size(), 4u);
  ASSERT_EQ(out.catalog->families.size(), 1u);
  const Family& f = out.catalog->families[0];
  EXPECT_EQ(f.name, "node_nvme_info");
  EXPECT_EQ(f.help, "Non-numeric data from /sys/class/nvme/<device>, value is always 1.");
  EXPECT_EQ(f.type, MetricType::gauge);
  // The model's and serial's padding is trimmed, as procfs's SysReadFile does.
  expect_golden(sweep_text(out), fixture_path("nvme/basic/expected.prom"));
}

TEST(NvmeDriver, StateChangeRelabelsAtTheNextSweep) {
  FakeTree tree;
  add_controller(tree, "nvme0", "live");
  auto driver = driver_at(tree.root());
  Sweep first = sweep_ok(*driver);
  EXPECT_NE(sweep_text(first).find("state=\"live\"} 1"), std::string::npos);
  tree.write("sys/class/nvme/nvme0/state", "resetting\n");
  Sweep second = sweep_ok(*driver);  // still under the old label; asks for a walk
  EXPECT_EQ(second.catalog, first.catalog);
  EXPECT_EQ(second.readings.size(), 1u);
  Sweep third = sweep_ok(*driver);
  EXPECT_NE(third.catalog, first.catalog);
  EXPECT_NE(sweep_text(third).find("state=\"resetting\"} 1"), std::string::npos)
      << sweep_text(third);
  EXPECT_EQ(third.readings.size(), 1u);
  // And stays put while the state does.
  Sweep fourth = sweep_ok(*driver);
  EXPECT_EQ(fourth.catalog, third.catalog);
}

TEST(NvmeDriver, ControllerWithoutALabelFileIsSkippedAndCounted) {
  FakeTree tree;
  add_controller(tree, "nvme0", "live");
  add_controller(tree, "nvme1", "live");
  tree.remove("sys/class/nvme/nvme1/serial");
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 1u);
  EXPECT_EQ(out.readings.size(), 1u);
  EXPECT_EQ(sweep_text(out).find("nvme1"), std::string::npos);
}

TEST(NvmeDriver, VanishedControllerLosesItsSample) {
  FakeTree tree;
  add_controller(tree, "nvme0", "live");
  add_controller(tree, "nvme1", "live");
  auto driver = driver_at(tree.root(), /*keep_open=*/false);
  EXPECT_EQ(sweep_ok(*driver).readings.size(), 2u);
  tree.remove("sys/class/nvme/nvme1");
  Sweep gone = sweep_ok(*driver);
  EXPECT_EQ(gone.readings.size(), 1u);
  EXPECT_EQ(gone.errors, 1u);
  Sweep after = sweep_ok(*driver);
  EXPECT_EQ(after.errors, 0u);
  EXPECT_EQ(after.catalog->series.size(), 1u);
}

TEST(NvmeDriver, AbsentIsNoSuchFile) {
  FakeTree tree;
  tree.mkdir("sys/class");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto result = driver->sweep(out);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, std::errc::no_such_file_or_directory);
}

TEST(NvmeDriver, SteadySweepAllocatesNothing) {
  auto d = driver_at(fixture_path("nvme/basic"));
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
