#include "gridnode/drivers/cndev.hpp"

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

// The cndev driver against the fake libcndev.so (tests/fakes/fake_cndev.c), loaded through its
// own dlopen path; one sweep is one step of the scenario ($FAKE_CNDEV_SCENARIO).
namespace gridnode::drivers {
namespace {

using gridnode::testing::expect_golden;
using gridnode::testing::fixture_path;
using gridnode::testing::has_line;
using gridnode::testing::sweep_text;
using std::chrono::milliseconds;

class CndevDriverTest : public ::testing::Test {
 protected:
  std::unique_ptr<Driver> driver_for(const std::string& scenario,
                                     milliseconds timeout = milliseconds(1000),
                                     const std::string& library = GRIDNODE_FAKE_CNDEV) {
    std::string path = tree_.root() + "/scenario";
    std::ofstream(path) << scenario;
    ::setenv("FAKE_CNDEV_SCENARIO", path.c_str(), 1);
    CndevOptions options;
    options.roots.procfs = tree_.root() + "/proc";
    options.library = library;
    options.call_timeout = timeout;
    return make_cndev_driver(std::move(options));
  }

  static std::string fixture(const std::string& name) {
    return gridnode::testing::fixture_text("cndev/" + name);
  }

  // The value of the first sample of `name` whose labels hold mlu="<mlu>".
  static std::optional<std::string> value_of(const std::string& text, const std::string& name,
                                             int mlu) {
    return gridnode::testing::sample_value(text, name, "mlu", mlu);
  }

  static Sweep sweep(Driver& d, platform::Result<void>* result = nullptr) {
    return gridnode::testing::sweep_once(d, result);
  }

  gridnode::testing::FakeTree tree_;
};

TEST_F(CndevDriverTest, EveryFieldMapsToMluExportersNameUnitAndLabels) {
  tree_.write("proc/4242/status", "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n");
  tree_.write("proc/4242/cgroup", "0::/slurm/job_9\n");
  auto d = driver_for(fixture("two_mlus.scenario"));
  Sweep s = sweep(*d);
  ASSERT_TRUE(s.catalog);
  expect_golden(sweep_text(s), fixture_path("cndev/two_mlus.expected.prom"));
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, "machine_mlu_nums 2"));
  EXPECT_EQ(value_of(text, "mlu_temperature", 0), "52");
  EXPECT_EQ(value_of(text, "mlu_chip_temperature", 1), "55");
  EXPECT_EQ(value_of(text, "mlu_power_usage", 0), "210");
  // CNDev's MB become B, as mlu-exporter reports them.
  EXPECT_EQ(value_of(text, "mlu_memory_total", 1), std::to_string(std::uint64_t{49152} << 20));
  EXPECT_EQ(value_of(text, "mlu_memory_used", 0), std::to_string(std::uint64_t{40000} << 20));
  EXPECT_EQ(value_of(text, "mlu_utilization", 0), "88");
  EXPECT_EQ(value_of(text, "mlu_health", 1), "1");
  EXPECT_NE(text.find("mlu_temperature{mlu=\"0\",model=\"MLU370-X8\",sn=\"2b1a00c4\","
                      "uuid=\"30000000-0000-0000-0000-000000000aaa\"} 52"),
            std::string::npos);
  // The process's KiB become bytes; its owner from procfs.
  EXPECT_TRUE(
      has_line(text,
               "gridnode_gpu_process_memory_used_bytes{UUID=\"30000000-0000-0000-0000-"
               "000000000aaa\",cgroup=\"/slurm/job_9\",gpu=\"0\",pid=\"4242\",uid=\"1000\"} "
               "1073741824"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators{vendor=\"cambricon\"} 2"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators_busy{vendor=\"cambricon\"} 1"));
  EXPECT_TRUE(has_line(text, "gridnode_accelerators_idle{vendor=\"cambricon\"} 1"));
  // Headroom: (250 - 210) + (250 - 75) W.
  EXPECT_TRUE(
      has_line(text, "gridnode_accelerator_power_headroom_watts{vendor=\"cambricon\"} 215"));
  EXPECT_EQ(s.errors, 0u);
  EXPECT_TRUE(s.events.empty());
}

TEST_F(CndevDriverTest, DeviceInProblemIsLostAndTheOtherKeepsReporting) {
  auto d = driver_for(fixture("two_mlus.scenario") + "problem 1 1\n");
  sweep(*d);
  Sweep lost = sweep(*d);
  std::string text = sweep_text(lost);
  EXPECT_EQ(value_of(text, "gridnode_mlu_up", 1), "0");
  EXPECT_FALSE(value_of(text, "mlu_temperature", 1));
  EXPECT_EQ(value_of(text, "mlu_temperature", 0), "52");
  ASSERT_EQ(lost.events.size(), 1u);
  EXPECT_EQ(lost.events[0].severity, 3);
  EXPECT_NE(lost.events[0].message.find("CNDEV_ERROR_IN_PROBLEM"), std::string::npos);
  EXPECT_TRUE(sweep(*d).events.empty());
}

TEST_F(CndevDriverTest, HungCallDegradesOnlyThatMluWithinTheDeadline) {
  auto d = driver_for(fixture("two_mlus.scenario") + "hang 0 cndevGetDevicePowerInfo 1 400 1\n",
                      milliseconds(100));
  sweep(*d);
  auto t0 = std::chrono::steady_clock::now();
  Sweep hung = sweep(*d);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(350));
  std::string text = sweep_text(hung);
  EXPECT_EQ(value_of(text, "gridnode_mlu_degraded", 0), "1");
  EXPECT_EQ(value_of(text, "mlu_temperature", 1), "48");
  ASSERT_EQ(hung.events.size(), 1u);
  EXPECT_NE(hung.events[0].message.find("a CNDev call did not return within 100 ms"),
            std::string::npos);
  std::this_thread::sleep_for(milliseconds(450));
}

TEST_F(CndevDriverTest, HealthChangeIsAnEventAndErrorsSkipAField) {
  auto d = driver_for(fixture("two_mlus.scenario") +
                      "value 1 health 1 0 1\nerror 0 cndevGetTemperatureInfo 7 1 1\n");
  EXPECT_TRUE(sweep(*d).events.empty());
  Sweep sick = sweep(*d);
  ASSERT_EQ(sick.events.size(), 1u);
  EXPECT_EQ(sick.events[0].severity, 3);
  EXPECT_EQ(value_of(sweep_text(sick), "mlu_health", 1), "0");
  EXPECT_FALSE(value_of(sweep_text(sick), "mlu_temperature", 0));
  EXPECT_EQ(sick.errors, 1u);
  Sweep well = sweep(*d);
  ASSERT_EQ(well.events.size(), 1u);
  EXPECT_EQ(well.events[0].severity, 6);
}

TEST_F(CndevDriverTest, MissingLibraryNoDriverAndAnOldLibrary) {
  platform::Result<void> r;
  sweep(*driver_for("", milliseconds(1000), tree_.root() + "/none/libcndev.so"), &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  sweep(*driver_for("init_error 1\n"), &r);  // CNDEV_ERROR_NO_DRIVER: no MLU kernel driver
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  sweep(*driver_for("init_error 13\n"), &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code.category(), cndev_category());
  EXPECT_NE(r.error().message().find("no permission"), std::string::npos);
  sweep(*driver_for("", milliseconds(1000), GRIDNODE_FAKE_CNDEV_OLD), &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::function_not_supported);
  EXPECT_NE(r.error().context.find("no cndevGetDeviceHandleByIndex"), std::string::npos);
}

}  // namespace
}  // namespace gridnode::drivers
