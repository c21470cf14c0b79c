#include "gridnode/drivers/amdgpu.hpp"

#include <gtest/gtest.h>

#include <string>

#include "../../drivers/src/amdgpu/amdgpu_parse.hpp"
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

std::unique_ptr<Driver> driver_at(const std::string& root) {
  AmdgpuOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.hostname = "node-a";
  return make_amdgpu_driver(std::move(options));
}

TEST(AmdgpuParse, DpmCurrentLevelIsTheStarredLine) {
  using amdgpu::parse_dpm_current;
  EXPECT_EQ(parse_dpm_current("0: 500Mhz \n1: 800Mhz \n2: 1700Mhz *\n"), 1700u);
  EXPECT_EQ(parse_dpm_current("0: 96Mhz *\n1: 1000Mhz \n"), 96u);
  EXPECT_EQ(parse_dpm_current("0: 500MHz *\n"), 500u);
  EXPECT_FALSE(parse_dpm_current("0: 500Mhz \n1: 800Mhz \n"));  // nothing current
  EXPECT_FALSE(parse_dpm_current("0: fastMhz *\n"));
  EXPECT_FALSE(parse_dpm_current("0: 500 *\n"));
  EXPECT_FALSE(parse_dpm_current(""));
}

TEST(AmdgpuParse, CardIndexOnlyForWholeCards) {
  EXPECT_EQ(amdgpu::parse_card_index("card0"), 0u);
  EXPECT_EQ(amdgpu::parse_card_index("card12"), 12u);
  EXPECT_FALSE(amdgpu::parse_card_index("card0-DP-1"));
  EXPECT_FALSE(amdgpu::parse_card_index("renderD128"));
  EXPECT_FALSE(amdgpu::parse_card_index("card"));
}

TEST(AmdgpuDriver, BasicFixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("amdgpu/basic"));
  auto sweep = sweep_ok(*driver);
  ASSERT_TRUE(sweep.catalog);
  std::string text = sweep_text(sweep);
  expect_golden(text, fixture_path("amdgpu/basic/expected.prom"));
  EXPECT_EQ(sweep.errors, 0u);
  const std::string mi210 =
      "card_model=\"AMD Instinct MI210\",gpu_id=\"0\",hostname=\"node-a\","
      "serial_number=\"692228000512\"";
  EXPECT_TRUE(has_line(text, "gpu_gfx_activity{" + mi210 + "} 12"));
  EXPECT_TRUE(has_line(text, "gpu_total_vram{" + mi210 + "} 65520"));
  EXPECT_TRUE(has_line(text, "gpu_used_vram{" + mi210 + "} 10240"));
  EXPECT_TRUE(has_line(text, "gpu_free_vram{" + mi210 + "} 55280"));
  EXPECT_TRUE(has_line(text, "gpu_power_usage{" + mi210 + "} 97"));
  EXPECT_TRUE(has_line(text, "gpu_junction_temperature{" + mi210 + "} 52"));
  EXPECT_TRUE(has_line(text, "gpu_memory_temperature{" + mi210 + "} 48"));
  EXPECT_TRUE(
      has_line(text,
               "gpu_clock{card_model=\"AMD Instinct MI210\",clock_type=\"GPU_CLOCK_TYPE_SYSTEM\","
               "gpu_id=\"0\",hostname=\"node-a\",serial_number=\"692228000512\"} 1700"));
  EXPECT_TRUE(
      has_line(text,
               "gpu_clock{card_model=\"AMD Instinct MI210\",clock_type=\"GPU_CLOCK_TYPE_MEMORY\","
               "gpu_id=\"0\",hostname=\"node-a\",serial_number=\"692228000512\"} 1600"));
  // The consumer card: model from the PCI id, power from power1_input, no memory temperature.
  EXPECT_TRUE(has_line(text,
                       "gpu_power_usage{card_model=\"0x744c\",gpu_id=\"2\",hostname=\"node-a\","
                       "serial_number=\"\"} 11"));
  EXPECT_EQ(text.find("gpu_memory_temperature{card_model=\"0x744c\""), std::string::npos);
  // The Intel card is not amdgpu's.
  EXPECT_EQ(text.find("gpu_id=\"1\""), std::string::npos);
  EXPECT_TRUE(has_line(text, "gridnode_accelerators{vendor=\"amd\"} 2"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators_busy{vendor=\"amd\"} 1"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators_idle{vendor=\"amd\"} 1"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerator_memory_free_bytes{vendor=\"amd\"} 74591502336"));
}

TEST(AmdgpuDriver, NoDrmIsAbsent) {
  FakeTree tree;
  tree.mkdir("sys/class");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto r = driver->sweep(out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST(AmdgpuDriver, OnlyOtherVendorsCardsIsAbsent) {
  FakeTree tree;
  tree.mkdir("sys/devices/pci0000:00/0000:00:02.0");
  tree.symlink("../../../../bus/pci/drivers/i915", "sys/devices/pci0000:00/0000:00:02.0/driver");
  tree.mkdir("sys/class/drm/card0");
  tree.symlink("../../../devices/pci0000:00/0000:00:02.0", "sys/class/drm/card0/device");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto r = driver->sweep(out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST(AmdgpuDriver, MalformedReadingIsSkippedAndCounted) {
  FakeTree tree;
  std::string dev = "sys/devices/pci0000:00/0000:03:00.0";
  tree.write(dev + "/gpu_busy_percent", "busy\n");
  tree.write(dev + "/mem_info_vram_total", "1073741824\n");
  tree.write(dev + "/mem_info_vram_used", "0\n");
  tree.write(dev + "/pp_dpm_sclk", "0: 500Mhz\n");  // no current level marked
  tree.symlink("../../../bus/pci/drivers/amdgpu", dev + "/driver");
  tree.mkdir("sys/class/drm/card0");
  tree.symlink("../../../devices/pci0000:00/0000:03:00.0", "sys/class/drm/card0/device");
  auto driver = driver_at(tree.root());
  auto sweep = sweep_ok(*driver);
  std::string text = sweep_text(sweep);
  EXPECT_EQ(sweep.errors, 2u);
  EXPECT_EQ(text.find("gpu_gfx_activity{"), std::string::npos);
  EXPECT_EQ(text.find("gpu_clock{"), std::string::npos);
  EXPECT_NE(text.find("gpu_total_vram{card_model=\"\",gpu_id=\"0\",hostname=\"node-a\","
                      "serial_number=\"\"} 1024"),
            std::string::npos);
  // Without an activity reading the card is neither busy nor idle.
  EXPECT_TRUE(has_line(text, "gridnode_accelerators_busy{vendor=\"amd\"} 0"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators_idle{vendor=\"amd\"} 0"));
}

}  // namespace
}  // namespace gridnode::drivers
