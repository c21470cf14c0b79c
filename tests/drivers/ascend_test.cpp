#include "gridnode/drivers/ascend.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "accelerator_fixture.hpp"
#include "golden.hpp"
#include "temp_dir.hpp"

// The ascend driver against the fake libdcmi.so (tests/fakes/fake_dcmi.c), loaded through the
// driver's own dlopen path. Each test writes a scenario and points $FAKE_DCMI_SCENARIO at it;
// the fake reads it at dcmi_init. One sweep is one step of the scenario.
namespace gridnode::drivers {
namespace {

using gridnode::testing::expect_golden;
using gridnode::testing::fixture_path;
using gridnode::testing::has_line;
using gridnode::testing::sweep_text;
using std::chrono::milliseconds;

class AscendDriverTest : public ::testing::Test {
 protected:
  std::unique_ptr<Driver> driver_for(const std::string& scenario,
                                     milliseconds timeout = milliseconds(1000),
                                     const std::string& library = GRIDNODE_FAKE_DCMI) {
    std::string path = tree_.root() + "/scenario";
    std::ofstream(path) << scenario;
    ::setenv("FAKE_DCMI_SCENARIO", path.c_str(), 1);
    AscendOptions options;
    options.roots.procfs = tree_.root() + "/proc";
    options.roots.sysfs = tree_.root() + "/sys";
    options.library = library;
    options.call_timeout = timeout;
    return make_ascend_driver(std::move(options));
  }

  static std::string fixture(const std::string& name) {
    return gridnode::testing::fixture_text("ascend/" + name);
  }

  // The value of the first sample line of `name` whose labels hold id="<id>".
  static std::optional<std::string> value_of(const std::string& text, const std::string& name,
                                             int id) {
    return gridnode::testing::sample_value(text, name, "id", id);
  }

  static Sweep sweep(Driver& d, platform::Result<void>* result = nullptr) {
    return gridnode::testing::sweep_once(d, result);
  }

  gridnode::testing::FakeTree tree_;
};

TEST_F(AscendDriverTest, EveryFieldMapsToNpuExportersNameUnitAndLabels) {
  tree_.write("proc/4242/status", "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n");
  tree_.write("proc/4242/cgroup", "0::/user.slice/user-1000.slice/train.scope\n");
  auto d = driver_for(fixture("two_chips.scenario"));
  Sweep s = sweep(*d);
  ASSERT_TRUE(s.catalog);
  expect_golden(sweep_text(s), fixture_path("ascend/two_chips.expected.prom"));
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, "machine_npu_nums 2"));
  // DCMI's 0.1 W and 0.01 V become W and V exactly; memory stays in MB as npu-exporter says.
  EXPECT_EQ(value_of(text, "npu_chip_info_power", 4), "183.5");
  EXPECT_EQ(value_of(text, "npu_chip_info_voltage", 5), "12.5");
  EXPECT_EQ(value_of(text, "npu_chip_info_hbm_used_memory", 4), "30000");
  EXPECT_EQ(value_of(text, "npu_chip_info_hbm_total_memory", 5), "65536");
  EXPECT_EQ(value_of(text, "npu_chip_info_used_memory", 4), "2768");
  EXPECT_EQ(value_of(text, "npu_chip_info_total_memory", 4), "32768");
  EXPECT_EQ(value_of(text, "npu_chip_info_temperature", 5), "45");
  EXPECT_EQ(value_of(text, "npu_chip_info_utilization", 4), "63");
  EXPECT_EQ(value_of(text, "npu_chip_info_aicore_current_freq", 4), "1800");
  // npu-exporter's conventions: health and network 1 = healthy; no error code = 0.
  EXPECT_EQ(value_of(text, "npu_chip_info_health_status", 4), "1");
  EXPECT_EQ(value_of(text, "npu_chip_info_network_status", 4), "1");
  EXPECT_EQ(value_of(text, "npu_chip_info_error_code", 4), "0");
  EXPECT_EQ(value_of(text, "gridnode_npu_up", 5), "1");
  // The labels: the physical id, name-type-version, the VDIE id and the PCIe address.
  EXPECT_NE(text.find("npu_chip_info_temperature{id=\"4\",model_name=\"910B3-Ascend-V1\","
                      "pcie_bus_info=\"0000:C1:00.0\","
                      "vdie_id=\"1A2B3C4D-00000001-00000002-00000003-00000004\"} 47"),
            std::string::npos);
  // The process on chip 4, owned as procfs says; chip 4 is busy, chip 5 idle.
  EXPECT_TRUE(has_line(text,
                       "gridnode_gpu_process_memory_used_bytes{UUID=\"1A2B3C4D-00000001-00000002-"
                       "00000003-00000004\",cgroup=\"/user.slice/user-1000.slice/train.scope\","
                       "gpu=\"4\",pid=\"4242\",uid=\"1000\"} 31457280000"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators{vendor=\"huawei\"} 2"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators_busy{vendor=\"huawei\"} 1"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators_idle{vendor=\"huawei\"} 1"));
  // HBM free: (65536 - 30000) + (65536 - 3000) MB.
  EXPECT_TRUE(
      has_line(text, "gridnode_accelerator_memory_free_bytes{vendor=\"huawei\"} " +
                         std::to_string((std::uint64_t{65536 - 30000} + (65536 - 3000)) << 20)));
  // DCMI has no power limit: no headroom is claimed.
  EXPECT_TRUE(has_line(text, "gridnode_accelerator_power_headroom_watts{vendor=\"huawei\"} 0"));
  EXPECT_EQ(s.errors, 0u);
  EXPECT_TRUE(s.events.empty());
}

TEST_F(AscendDriverTest, ValuesFollowTheScenarioAndAChipWithoutHbmCountsItsDdr) {
  auto d = driver_for(
      "cards 1 1\nvalue 0 temperature 40 41 42\nvalue 0 mem_total 8192\nvalue 0 mem_available "
      "6144\n");
  for (const char* want : {"40", "41", "42", "42"}) {
    std::string text = sweep_text(sweep(*d));
    EXPECT_EQ(value_of(text, "npu_chip_info_temperature", 0), want);
    // No HBM (a 310P): the HBM series are absent, not zero, and free memory is the DDR's.
    EXPECT_FALSE(value_of(text, "npu_chip_info_hbm_total_memory", 0));
    EXPECT_TRUE(has_line(text, "gridnode_accelerator_memory_free_bytes{vendor=\"huawei\"} " +
                                   std::to_string(std::uint64_t{6144} << 20)));
  }
}

TEST_F(AscendDriverTest, InjectedErrorSkipsThatFieldAndCountsIt) {
  auto d =
      driver_for(fixture("two_chips.scenario") + "error 1 dcmi_get_device_temperature -8005 1 1\n");
  sweep(*d);
  Sweep s = sweep(*d);
  std::string text = sweep_text(s);
  EXPECT_FALSE(value_of(text, "npu_chip_info_temperature", 5));
  EXPECT_EQ(value_of(text, "npu_chip_info_power", 5), "92");
  EXPECT_EQ(value_of(text, "npu_chip_info_temperature", 4), "47");
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(value_of(sweep_text(sweep(*d)), "npu_chip_info_temperature", 5), "45");
}

TEST_F(AscendDriverTest, NotSupportedIsAbsentNotAnError) {
  auto d =
      driver_for(fixture("two_chips.scenario") + "error * dcmi_get_device_network_health -8255\n");
  Sweep s = sweep(*d);
  EXPECT_FALSE(value_of(sweep_text(s), "npu_chip_info_network_status", 4));
  EXPECT_EQ(s.errors, 0u);
}

TEST_F(AscendDriverTest, LostChipIsDownWithoutStaleValuesAndTheOtherKeepsReporting) {
  auto d = driver_for(fixture("two_chips.scenario") + "lost 1 2\n");
  sweep(*d);
  sweep(*d);
  Sweep lost = sweep(*d);  // step 2
  std::string text = sweep_text(lost);
  EXPECT_EQ(value_of(text, "gridnode_npu_up", 5), "0");
  EXPECT_EQ(value_of(text, "gridnode_npu_degraded", 5), "0");
  EXPECT_FALSE(value_of(text, "npu_chip_info_temperature", 5));
  EXPECT_EQ(value_of(text, "npu_chip_info_temperature", 4), "47");
  EXPECT_TRUE(has_line(text, "gridnode_accelerators{vendor=\"huawei\"} 2"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators_idle{vendor=\"huawei\"} 0"));
  ASSERT_EQ(lost.events.size(), 1u);
  EXPECT_EQ(lost.events[0].severity, 3);
  EXPECT_NE(lost.events[0].message.find("DEVICE_NOT_EXIST"), std::string::npos);
  EXPECT_EQ(lost.events[0].fields,
            (Labels{{"id", "5"},
                    {"pcie_bus_info", "0000:01:00.0"},
                    {"state", "lost"},
                    {"vdie_id", "5E6F7081-00000005-00000006-00000007-00000008"}}));
  Sweep after = sweep(*d);
  EXPECT_TRUE(after.events.empty());
  EXPECT_EQ(value_of(sweep_text(after), "gridnode_npu_up", 5), "0");
}

TEST_F(AscendDriverTest, HungCallMarksOnlyThatChipDegradedWithinTheDeadlineAndItRecovers) {
  // Chip 5's power call hangs 400 ms at step 1 only; the deadline is 100 ms.
  auto d = driver_for(fixture("two_chips.scenario") + "hang 1 dcmi_get_device_power_info 1 400 1\n",
                      milliseconds(100));
  sweep(*d);
  auto t0 = std::chrono::steady_clock::now();
  Sweep hung = sweep(*d);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(350));
  std::string text = sweep_text(hung);
  EXPECT_EQ(value_of(text, "gridnode_npu_up", 5), "0");
  EXPECT_EQ(value_of(text, "gridnode_npu_degraded", 5), "1");
  EXPECT_FALSE(value_of(text, "npu_chip_info_temperature", 5));
  EXPECT_EQ(value_of(text, "npu_chip_info_temperature", 4), "47");
  ASSERT_EQ(hung.events.size(), 1u);
  EXPECT_NE(hung.events[0].message.find("not answering: a DCMI call did not return within 100 ms"),
            std::string::npos);
  // Once the call came back, the chip answers again, with one event saying so.
  for (int i = 0; i < 50; ++i) {
    Sweep s = sweep(*d);
    if (value_of(sweep_text(s), "gridnode_npu_up", 5) == "1") {
      ASSERT_EQ(s.events.size(), 1u);
      EXPECT_NE(s.events[0].message.find("answering again"), std::string::npos);
      return;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  FAIL() << "chip 5 never answered again";
}

TEST_F(AscendDriverTest, HungInitFailsTheSweepAtItsDeadline) {
  auto d = driver_for("hang 0 dcmi_get_card_num_list 0 2000\n", milliseconds(100));
  platform::Result<void> r;
  auto t0 = std::chrono::steady_clock::now();
  sweep(*d, &r);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(1500));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::timed_out);
}

TEST_F(AscendDriverTest, HealthChangeAndNewErrorCodesAreEvents) {
  auto d = driver_for(fixture("two_chips.scenario") +
                      "value 0 health 0 0 2 2 0\n"
                      "codes 0 1 80E01801\n"
                      "codes 0 3 80E01801 80CB8009\n"
                      "codes 0 4\n");
  EXPECT_TRUE(sweep(*d).events.empty());  // step 0: healthy, no codes
  Sweep s1 = sweep(*d);
  ASSERT_EQ(s1.events.size(), 1u);
  EXPECT_EQ(s1.events[0].message, "NPU 4 (910B3-Ascend-V1): error code 0x80E01801");
  EXPECT_EQ(s1.events[0].severity, 4);
  EXPECT_EQ(value_of(sweep_text(s1), "npu_chip_info_error_code", 4), std::to_string(0x80E01801u));
  Sweep s2 = sweep(*d);  // health 2: a major alarm; the same code is no news
  ASSERT_EQ(s2.events.size(), 1u);
  EXPECT_EQ(s2.events[0].severity, 3);
  EXPECT_EQ(s2.events[0].message,
            "NPU 4 (910B3-Ascend-V1): health 2 (major alarm), was 0 (normal)");
  EXPECT_EQ(value_of(sweep_text(s2), "npu_chip_info_health_status", 4), "0");
  Sweep s3 = sweep(*d);  // only the new code
  ASSERT_EQ(s3.events.size(), 1u);
  EXPECT_NE(s3.events[0].message.find("0x80CB8009"), std::string::npos);
  Sweep s4 = sweep(*d);  // healthy again, codes cleared
  ASSERT_EQ(s4.events.size(), 1u);
  EXPECT_EQ(s4.events[0].severity, 6);
  EXPECT_EQ(value_of(sweep_text(s4), "npu_chip_info_error_code", 4), "0");
  EXPECT_EQ(value_of(sweep_text(s4), "npu_chip_info_health_status", 4), "1");
}

TEST_F(AscendDriverTest, ProcessesComeAndGoWithTheCatalog) {
  auto d = driver_for(fixture("two_chips.scenario") + "process 1 777 1048576 1 1\n");
  Sweep s0 = sweep(*d);
  auto first = s0.catalog;
  Sweep s1 = sweep(*d);
  ASSERT_TRUE(s1.catalog);
  EXPECT_NE(s1.catalog, first);
  EXPECT_NE(sweep_text(s1).find("pid=\"777\""), std::string::npos);
  EXPECT_TRUE(has_line(sweep_text(s1), "gridnode_accelerators_busy{vendor=\"huawei\"} 2"));
  Sweep s2 = sweep(*d);
  ASSERT_TRUE(s2.catalog);
  EXPECT_EQ(sweep_text(s2).find("pid=\"777\""), std::string::npos);
}

TEST_F(AscendDriverTest, ChipCountChangeDiscoversAgain) {
  // A third chip appears at step 2: that sweep's poll sees it and discovers again.
  auto d = driver_for("cards 1 2\ncards 1 3 2\n");
  EXPECT_TRUE(has_line(sweep_text(sweep(*d)), "machine_npu_nums 2"));
  EXPECT_TRUE(has_line(sweep_text(sweep(*d)), "machine_npu_nums 2"));
  Sweep s = sweep(*d);
  ASSERT_TRUE(s.catalog);  // a new catalog with the new chip's series
  EXPECT_TRUE(has_line(sweep_text(s), "machine_npu_nums 3"));
  EXPECT_TRUE(has_line(sweep_text(s), "gridnode_accelerators{vendor=\"huawei\"} 3"));
  EXPECT_TRUE(value_of(sweep_text(s), "gridnode_npu_up", 2));
}

TEST_F(AscendDriverTest, MissingLibraryIsAbsent) {
  auto d = driver_for("", milliseconds(1000), tree_.root() + "/no/libdcmi.so");
  platform::Result<void> r;
  sweep(*d, &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST_F(AscendDriverTest, LibraryWithoutDcmi2EntryPointsIsRefusedNamingTheMissingOne) {
  auto d = driver_for("", milliseconds(1000), GRIDNODE_FAKE_DCMI_OLD);
  platform::Result<void> r;
  sweep(*d, &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::function_not_supported);
  EXPECT_NE(r.error().context.find("no dcmi_get_device_logic_id"), std::string::npos);
}

TEST_F(AscendDriverTest, InitErrorIsDownWithDcmisName) {
  auto d = driver_for("init_error -8002\n");
  platform::Result<void> r;
  sweep(*d, &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code.category(), dcmi_category());
  EXPECT_EQ(r.error().code.value(), -8002);
  EXPECT_NE(r.error().message().find("operation not permitted"), std::string::npos);
  EXPECT_NE(r.error().message().find("/dev/davinci"), std::string::npos);
}

TEST_F(AscendDriverTest, NoChipIsAbsent) {
  auto d = driver_for("cards 0 0\n");
  platform::Result<void> r;
  sweep(*d, &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST(DcmiCategory, NamesDcmisErrors) {
  EXPECT_EQ(std::error_code(-8008, dcmi_category()).message(), "device does not exist");
  EXPECT_EQ(std::error_code(-8255, dcmi_category()).message(), "not supported");
  EXPECT_EQ(std::error_code(-1234, dcmi_category()).message(), "DCMI error -1234");
}

TEST(AcceleratorPower, AscendMetricsCannotBeCapped) {
  std::string why;
  EXPECT_FALSE(accelerator_power_capable("npu_chip_info_power", &why));
  EXPECT_NE(why.find("no power-limit control"), std::string::npos);
  EXPECT_FALSE(accelerator_power_capable("mlu_temperature", &why));
  EXPECT_NE(why.find("Cambricon"), std::string::npos);
  EXPECT_TRUE(accelerator_power_capable("DCGM_FI_DEV_POWER_USAGE", &why));
  EXPECT_TRUE(accelerator_power_capable("node_hwmon_temp_celsius", nullptr));
}

}  // namespace
}  // namespace gridnode::drivers
