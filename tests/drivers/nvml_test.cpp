#include "gridnode/drivers/nvml.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <string>

#include "../../drivers/src/nvml/nvml_parse.hpp"
#include "accelerator_fixture.hpp"
#include "golden.hpp"
#include "temp_dir.hpp"

// The nvml driver against the fake libnvidia-ml.so.1 (tests/fakes/fake_nvml.c), loaded through
// the driver's own dlopen path. Each test writes a scenario and points $FAKE_NVML_SCENARIO at it;
// the fake reads it at nvmlInit_v2. One sweep is one step of the scenario.
namespace gridnode::drivers {
namespace {

using gridnode::testing::expect_golden;
using gridnode::testing::fixture_path;
using gridnode::testing::sweep_text;
using std::chrono::milliseconds;

class NvmlDriverTest : public ::testing::Test {
 protected:
  // A scenario from text (or a fixture file's path), and a driver on the fake.
  std::unique_ptr<Driver> driver_for(const std::string& scenario,
                                     milliseconds timeout = milliseconds(1000),
                                     const std::string& library = GRIDNODE_FAKE_NVML,
                                     std::shared_ptr<NvmlPower> power = nullptr) {
    std::string path = tree_.root() + "/scenario";
    std::ofstream(path) << scenario;
    ::setenv("FAKE_NVML_SCENARIO", path.c_str(), 1);
    NvmlOptions options;
    options.roots.procfs = tree_.root() + "/proc";
    options.roots.sysfs = tree_.root() + "/sys";
    options.library = library;
    options.call_timeout = timeout;
    options.hostname = "node-a";
    options.power = std::move(power);
    return make_nvml_driver(std::move(options));
  }

  static std::string fixture(const std::string& name) {
    return gridnode::testing::fixture_text("nvml/" + name);
  }

  // The value of the first sample line of `name` whose labels hold gpu="<gpu>".
  static std::optional<std::string> value_of(const std::string& text, const std::string& name,
                                             int gpu) {
    return gridnode::testing::sample_value(text, name, "gpu", gpu);
  }

  static Sweep sweep(Driver& d, platform::Result<void>* result = nullptr) {
    return gridnode::testing::sweep_once(d, result);
  }

  gridnode::testing::FakeTree tree_;
};

TEST(NvmlParse, UidIsTheRealOne) {
  EXPECT_EQ(nvml::parse_status_uid("Name:\tpython\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\n"),
            1000u);
  EXPECT_FALSE(nvml::parse_status_uid("Name:\tpython\n"));
  EXPECT_FALSE(nvml::parse_status_uid("Uid:\tx\t1\n"));
}

TEST(NvmlParse, CgroupPrefersTheUnifiedHierarchy) {
  EXPECT_EQ(nvml::parse_cgroup_path("0::/system.slice/train.service\n"),
            "/system.slice/train.service");
  EXPECT_EQ(nvml::parse_cgroup_path("12:cpu,cpuacct:/a\n4:memory:/slurm/uid_1000/job_7\n"
                                    "1:name=systemd:/b\n0::/c\n"),
            "/c");
  EXPECT_EQ(nvml::parse_cgroup_path("12:cpu,cpuacct:/a\n4:memory:/slurm/job_7\n"), "/slurm/job_7");
  EXPECT_EQ(nvml::parse_cgroup_path("garbage\n"), "");
}

TEST_F(NvmlDriverTest, EveryFieldMapsToDcgmExportersNameAndUnit) {
  tree_.write("proc/4242/status", "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n");
  tree_.write("proc/4242/cgroup", "0::/user.slice/user-1000.slice/job.scope\n");
  auto d = driver_for(fixture("two_gpus.scenario"));
  Sweep s = sweep(*d);
  ASSERT_TRUE(s.catalog);
  expect_golden(sweep_text(s), fixture_path("nvml/two_gpus.expected.prom"));
  std::string text = sweep_text(s);
  // NVML's mW become W exactly; bytes become MiB as DCGM reports them.
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_POWER_USAGE", 0), "312.512");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_POWER_MGMT_LIMIT", 0), "700");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_FB_USED", 0), "40960");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_FB_TOTAL", 1), "81559");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_FB_RESERVED", 1), "636");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1), "123456789012");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_MEMORY_TEMP", 1), "38");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_CLOCKS_EVENT_REASONS", 0), "4");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_XID_ERRORS", 0), "0");
  EXPECT_EQ(value_of(text, "gridnode_gpu_up", 1), "1");
  // The minor number names the device node, not the index.
  EXPECT_NE(text.find("device=\"nvidia3\",gpu=\"1\""), std::string::npos);
  EXPECT_NE(text.find("DCGM_FI_DRIVER_VERSION=\"535.104.05\",Hostname=\"node-a\""),
            std::string::npos);
  // The process on GPU 0, owned as procfs says; GPU 0 is busy, GPU 1 idle.
  EXPECT_TRUE(gridnode::testing::has_line(
      text,
      "gridnode_gpu_process_memory_used_bytes{UUID=\"GPU-5a7c2b1e-0b8f-4c41-9f0a-1d2e3f405060\","
      "cgroup=\"/user.slice/user-1000.slice/job.scope\",gpu=\"0\",pid=\"4242\",uid=\"1000\"} "
      "42949672960"));
  EXPECT_TRUE(gridnode::testing::has_line(text, "gridnode_accelerators{vendor=\"nvidia\"} 2"));
  EXPECT_TRUE(gridnode::testing::has_line(text, "gridnode_accelerators_busy{vendor=\"nvidia\"} 1"));
  EXPECT_TRUE(gridnode::testing::has_line(text, "gridnode_accelerators_idle{vendor=\"nvidia\"} 1"));
  EXPECT_TRUE(gridnode::testing::has_line(
      text, "gridnode_accelerator_memory_free_bytes{vendor=\"nvidia\"} 126753964032"));
  EXPECT_EQ(s.errors, 0u);
  EXPECT_TRUE(s.events.empty());
}

TEST_F(NvmlDriverTest, ValuesFollowTheScenarioStepByStep) {
  auto d = driver_for(fixture("two_gpus.scenario"));
  std::string first = sweep_text(sweep(*d));
  Sweep second_sweep = sweep(*d);
  std::string second = sweep_text(second_sweep);
  EXPECT_EQ(value_of(first, "DCGM_FI_DEV_GPU_TEMP", 0), "41");
  EXPECT_EQ(value_of(second, "DCGM_FI_DEV_GPU_TEMP", 0), "42");
  EXPECT_EQ(value_of(second, "DCGM_FI_DEV_POWER_USAGE", 0), "320");
  EXPECT_EQ(value_of(second, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 0), "123456889012");
}

TEST_F(NvmlDriverTest, FieldTheGpuDoesNotSupportIsAbsentNotAnError) {
  auto d = driver_for("gpus 1\nvalue 0 gpu_temp 50\n");
  Sweep s = sweep(*d);
  std::string text = sweep_text(s);
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_GPU_TEMP", 0), "50");
  EXPECT_FALSE(value_of(text, "DCGM_FI_DEV_POWER_USAGE", 0));
  EXPECT_FALSE(value_of(text, "DCGM_FI_DEV_FAN_SPEED", 0));
  EXPECT_EQ(s.errors, 0u);
}

TEST_F(NvmlDriverTest, InjectedErrorSkipsThatFieldAndCountsIt) {
  auto d = driver_for(fixture("two_gpus.scenario") +
                      "error 1 nvmlDeviceGetPowerUsage 999 1 1\n");  // NVML_ERROR_UNKNOWN
  Sweep s0 = sweep(*d);
  EXPECT_EQ(s0.errors, 0u);
  Sweep s1 = sweep(*d);
  std::string text = sweep_text(s1);
  EXPECT_FALSE(value_of(text, "DCGM_FI_DEV_POWER_USAGE", 1));
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_POWER_USAGE", 0), "320");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_GPU_TEMP", 1), "42");
  EXPECT_EQ(s1.errors, 1u);
  Sweep s2 = sweep(*d);
  EXPECT_EQ(value_of(sweep_text(s2), "DCGM_FI_DEV_POWER_USAGE", 1), "69.875");
}

TEST_F(NvmlDriverTest, LostGpuIsDownWithoutStaleValuesAndTheOthersKeepReporting) {
  auto d = driver_for(fixture("two_gpus.scenario") + "lost 1 2\n");
  sweep(*d);
  sweep(*d);
  Sweep lost = sweep(*d);  // step 2
  std::string text = sweep_text(lost);
  EXPECT_EQ(value_of(text, "gridnode_gpu_up", 1), "0");
  EXPECT_EQ(value_of(text, "gridnode_gpu_degraded", 1), "0");
  for (const char* name : {"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_FB_USED",
                           "DCGM_FI_DEV_XID_ERRORS"}) {
    EXPECT_FALSE(value_of(text, name, 1)) << name;
    EXPECT_TRUE(value_of(text, name, 0)) << name;
  }
  EXPECT_EQ(value_of(text, "gridnode_gpu_up", 0), "1");
  EXPECT_TRUE(gridnode::testing::has_line(text, "gridnode_accelerators{vendor=\"nvidia\"} 2"));
  EXPECT_TRUE(gridnode::testing::has_line(text, "gridnode_accelerators_idle{vendor=\"nvidia\"} 0"));
  ASSERT_EQ(lost.events.size(), 1u);
  EXPECT_EQ(lost.events[0].severity, 3);
  EXPECT_NE(lost.events[0].message.find("GPU_IS_LOST"), std::string::npos);
  EXPECT_EQ(lost.events[0].fields, (Labels{{"UUID", "GPU-6b8d3c2f-1c90-4d52-a01b-2e3f40516171"},
                                           {"gpu", "1"},
                                           {"pci_bus_id", "00000000:2A:00.0"},
                                           {"state", "lost"}}));
  // Once told is enough; it stays down.
  Sweep after = sweep(*d);
  EXPECT_TRUE(after.events.empty());
  EXPECT_EQ(value_of(sweep_text(after), "gridnode_gpu_up", 1), "0");
}

TEST_F(NvmlDriverTest, HungCallMarksOnlyThatGpuDegradedWithinTheDeadline) {
  // GPU 1's power reading hangs for 3 s from the second sweep on; the deadline is 150 ms.
  auto d = driver_for(fixture("two_gpus.scenario") + "hang 1 nvmlDeviceGetPowerUsage 1 3000\n",
                      milliseconds(150));
  sweep(*d);
  auto t0 = std::chrono::steady_clock::now();
  Sweep hung = sweep(*d);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, milliseconds(1500));
  std::string text = sweep_text(hung);
  EXPECT_EQ(value_of(text, "gridnode_gpu_up", 1), "0");
  EXPECT_EQ(value_of(text, "gridnode_gpu_degraded", 1), "1");
  EXPECT_FALSE(value_of(text, "DCGM_FI_DEV_GPU_TEMP", 1));  // no stale values
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_GPU_TEMP", 0), "42");
  EXPECT_EQ(value_of(text, "gridnode_gpu_degraded", 0), "0");
  ASSERT_EQ(hung.events.size(), 1u);
  EXPECT_NE(hung.events[0].message.find("not answering"), std::string::npos);
  // The GPU is not asked again while its call is out: the next sweep does not wait at all.
  t0 = std::chrono::steady_clock::now();
  Sweep next = sweep(*d);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(1000));
  EXPECT_EQ(value_of(sweep_text(next), "gridnode_gpu_degraded", 1), "1");
  EXPECT_EQ(value_of(sweep_text(next), "DCGM_FI_DEV_GPU_TEMP", 0), "42");
  EXPECT_TRUE(next.events.empty());
}

TEST_F(NvmlDriverTest, GpuWhoseCallComesBackAnswersAgain) {
  // Only the call at step 1 hangs, for 300 ms; the deadline is 100 ms.
  auto d = driver_for(fixture("two_gpus.scenario") + "hang 0 nvmlDeviceGetFanSpeed 1 300 1\n",
                      milliseconds(100));
  sweep(*d);
  Sweep hung = sweep(*d);
  ASSERT_EQ(value_of(sweep_text(hung), "gridnode_gpu_degraded", 0), "1");
  // Sweep until the call has come back and the GPU was asked afresh (a deadline, not a sleep).
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  Sweep back;
  std::vector<DeviceEvent> events;
  while (std::chrono::steady_clock::now() < end) {
    back = sweep(*d);
    events.insert(events.end(), back.events.begin(), back.events.end());
    if (value_of(sweep_text(back), "gridnode_gpu_up", 0) == "1") {
      break;
    }
  }
  std::string text = sweep_text(back);
  EXPECT_EQ(value_of(text, "gridnode_gpu_up", 0), "1");
  EXPECT_EQ(value_of(text, "gridnode_gpu_degraded", 0), "0");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_GPU_TEMP", 0), "42");  // this sweep's, not the stale one
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].message.find("answering again"), std::string::npos);
  EXPECT_EQ(events[0].severity, 6);
}

TEST_F(NvmlDriverTest, HungInitFailsTheSweepAtItsDeadline) {
  auto d = driver_for("gpus 1\nhang * nvmlInit_v2 0 3000\n", milliseconds(100));
  auto t0 = std::chrono::steady_clock::now();
  platform::Result<void> r;
  sweep(*d, &r);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(1500));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::timed_out);
  EXPECT_NE(r.error().message().find("nvmlInit_v2"), std::string::npos);
}

TEST_F(NvmlDriverTest, XidErrorBecomesAnEventAndTheLastXidGauge) {
  auto d = driver_for(fixture("two_gpus.scenario") + "xid 1 1 79\n");
  Sweep s0 = sweep(*d);
  EXPECT_TRUE(s0.events.empty());
  Sweep s1 = sweep(*d);
  ASSERT_EQ(s1.events.size(), 1u);
  EXPECT_EQ(s1.events[0].message, "GPU 1 (GPU-6b8d3c2f-1c90-4d52-a01b-2e3f40516171): XID 79");
  EXPECT_EQ(s1.events[0].fields, (Labels{{"UUID", "GPU-6b8d3c2f-1c90-4d52-a01b-2e3f40516171"},
                                         {"gpu", "1"},
                                         {"pci_bus_id", "00000000:2A:00.0"},
                                         {"xid", "79"}}));
  EXPECT_EQ(value_of(sweep_text(s1), "DCGM_FI_DEV_XID_ERRORS", 1), "79");
  EXPECT_EQ(value_of(sweep_text(s1), "DCGM_FI_DEV_XID_ERRORS", 0), "0");
  Sweep s2 = sweep(*d);
  EXPECT_TRUE(s2.events.empty());
  EXPECT_EQ(value_of(sweep_text(s2), "DCGM_FI_DEV_XID_ERRORS", 1), "79");
}

TEST_F(NvmlDriverTest, ProcessesComeAndGoWithTheCatalog) {
  auto d = driver_for("gpus 1\nvalue 0 util_gpu 0\nprocess 0 777 1048576 1 1\n");
  Sweep s0 = sweep(*d);
  Sweep s1 = sweep(*d);
  Sweep s2 = sweep(*d);
  EXPECT_NE(s0.catalog, s1.catalog);
  EXPECT_EQ(s0.catalog, s2.catalog);  // back to the GPUs' own catalog, same pointer
  // No /proc/777 in the tree: the process is reported, its owner unknown.
  EXPECT_TRUE(gridnode::testing::has_line(
      sweep_text(s1),
      "gridnode_gpu_process_memory_used_bytes{UUID=\"GPU-00000000-0000-0000-0000-000000000000\","
      "cgroup=\"\",gpu=\"0\",pid=\"777\",uid=\"\"} 1048576"));
  EXPECT_TRUE(gridnode::testing::has_line(sweep_text(s1),
                                          "gridnode_accelerators_busy{vendor=\"nvidia\"} 1"));
  EXPECT_TRUE(gridnode::testing::has_line(sweep_text(s2),
                                          "gridnode_accelerators_busy{vendor=\"nvidia\"} 0"));
}

TEST_F(NvmlDriverTest, OlderLibraryWithoutOptionalEntryPointsLosesOnlyThoseFields) {
  auto d = driver_for(fixture("two_gpus.scenario"), milliseconds(1000), GRIDNODE_FAKE_NVML_OLD);
  Sweep s = sweep(*d);
  std::string text = sweep_text(s);
  EXPECT_FALSE(value_of(text, "DCGM_FI_DEV_FB_RESERVED", 0));  // no _v2 memory info
  EXPECT_FALSE(value_of(text, "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", 0));
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_FB_USED", 0), "40960");           // from nvmlMemory_t
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_CLOCKS_EVENT_REASONS", 0), "4");  // the older name
  EXPECT_NE(text.find("gridnode_gpu_process_memory_used_bytes{"), std::string::npos);  // _v2
  EXPECT_EQ(s.errors, 0u);
}

TEST_F(NvmlDriverTest, MemoryInfoFallsBackToV1WhenV2IsRefused) {
  // 25: NVML_ERROR_ARGUMENT_VERSION_MISMATCH, as a driver answers a struct version it lacks.
  auto d = driver_for(fixture("two_gpus.scenario") + "error * nvmlDeviceGetMemoryInfo_v2 25\n");
  Sweep s = sweep(*d);
  std::string text = sweep_text(s);
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_FB_USED", 0), "40960");
  EXPECT_FALSE(value_of(text, "DCGM_FI_DEV_FB_RESERVED", 0));
  EXPECT_EQ(s.errors, 0u);
}

TEST_F(NvmlDriverTest, MissingLibraryIsAbsent) {
  auto d = driver_for("gpus 1\n", milliseconds(1000), tree_.root() + "/no/libnvidia-ml.so.1");
  platform::Result<void> r;
  sweep(*d, &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST_F(NvmlDriverTest, KernelModuleNotLoadedIsAbsent) {
  auto d = driver_for("init_error 9\n");
  platform::Result<void> r;
  sweep(*d, &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  EXPECT_NE(r.error().message().find("kernel module"), std::string::npos);
}

TEST_F(NvmlDriverTest, VersionMismatchIsDownWithAClearReason) {
  auto d = driver_for("init_error 18\n");
  platform::Result<void> r;
  sweep(*d, &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::error_code(18, nvml_category()));
  EXPECT_NE(r.error().message().find("different driver releases"), std::string::npos);
  EXPECT_NE(r.error().message().find("version mismatch"), std::string::npos);
  // Retried only every so often, not hammered: the next sweep answers the same at once.
  platform::Result<void> again;
  sweep(*d, &again);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, r.error().code);
}

TEST_F(NvmlDriverTest, NoPermissionIsDown) {
  auto d = driver_for("init_error 4\n");
  platform::Result<void> r;
  sweep(*d, &r);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::error_code(4, nvml_category()));
  EXPECT_NE(r.error().message().find("Insufficient Permissions"), std::string::npos);
}

TEST_F(NvmlDriverTest, NoGpuIsAbsent) {
  auto d = driver_for("gpus 0\n");
  for (int i = 0; i < 2; ++i) {
    platform::Result<void> r;
    sweep(*d, &r);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  }
}

// ---- power limits (NvmlPower), through the same library and handles

// Two H100s whose limits may go from 200 W to 700 W, 700 W by default.
std::string power_scenario(const std::string& extra = "") {
  std::ifstream in(gridnode::testing::fixture_path("nvml/two_gpus.scenario"));
  return std::string(std::istreambuf_iterator<char>(in), {}) +
         "value * power_limit_min_mw 200000\nvalue * power_limit_max_mw 700000\n"
         "value * power_limit_default_mw 700000\n" +
         extra;
}

TEST_F(NvmlDriverTest, PowerLimitIsSetAndTheNextSweepReportsIt) {
  auto power = std::make_shared<NvmlPower>();
  auto d = driver_for(power_scenario(), milliseconds(1000), GRIDNODE_FAKE_NVML, power);
  sweep(*d);
  auto before = power->read_limits(1);
  ASSERT_TRUE(before) << before.error().message();
  EXPECT_EQ(before->current_mw, 700000u);
  EXPECT_EQ(before->min_mw, 200000u);
  EXPECT_EQ(before->max_mw, 700000u);
  EXPECT_EQ(before->default_mw, 700000u);
  auto set = power->set_limit_mw(1, 250000);
  ASSERT_TRUE(set) << set.error().message();
  EXPECT_EQ(power->read_limits(1)->current_mw, 250000u);
  std::string text = sweep_text(sweep(*d));
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_POWER_MGMT_LIMIT", 1), "250");
  EXPECT_EQ(value_of(text, "DCGM_FI_DEV_POWER_MGMT_LIMIT", 0), "700");  // only GPU 1's
  // And back, as cap_power restores it.
  ASSERT_TRUE(power->set_limit_mw(1, before->current_mw));
  EXPECT_EQ(value_of(sweep_text(sweep(*d)), "DCGM_FI_DEV_POWER_MGMT_LIMIT", 1), "700");
}

TEST_F(NvmlDriverTest, PowerKnowsTheGpusUuidsInIndexOrderOnceDiscovered) {
  auto power = std::make_shared<NvmlPower>();
  auto none = power->gpu_uuids();  // no driver has discovered anything yet
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, std::errc::resource_unavailable_try_again);
  // Renumbered: the fixture's second GPU comes first.
  auto d = driver_for(power_scenario("uuid 0 GPU-6b8d3c2f-1c90-4d52-a01b-2e3f40516171\n"
                                     "uuid 1 GPU-5a7c2b1e-0b8f-4c41-9f0a-1d2e3f405060\n"),
                      milliseconds(1000), GRIDNODE_FAKE_NVML, power);
  sweep(*d);
  auto uuids = power->gpu_uuids();
  ASSERT_TRUE(uuids) << uuids.error().message();
  EXPECT_EQ(*uuids, (std::vector<std::string>{"GPU-6b8d3c2f-1c90-4d52-a01b-2e3f40516171",
                                              "GPU-5a7c2b1e-0b8f-4c41-9f0a-1d2e3f405060"}));
  d.reset();  // the driver withdraws its GPUs
  EXPECT_FALSE(power->gpu_uuids());
}

TEST_F(NvmlDriverTest, PowerLimitOutsideTheGpusRangeIsRefusedNamingTheRange) {
  auto power = std::make_shared<NvmlPower>();
  auto d = driver_for(power_scenario(), milliseconds(1000), GRIDNODE_FAKE_NVML, power);
  sweep(*d);
  for (std::uint32_t mw : {150000u, 750000u}) {
    auto r = power->set_limit_mw(0, mw);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, std::errc::invalid_argument);
    EXPECT_NE(r.error().message().find("outside the range this GPU accepts, 200 W to 700 W"),
              std::string::npos)
        << r.error().message();
  }
  EXPECT_EQ(power->read_limits(0)->current_mw, 700000u);  // unchanged
}

TEST_F(NvmlDriverTest, PowerLimitWithoutPermissionSaysRootOrCapSysAdmin) {
  auto power = std::make_shared<NvmlPower>();
  auto d = driver_for(power_scenario("error 0 nvmlDeviceSetPowerManagementLimit 4\n"),
                      milliseconds(1000), GRIDNODE_FAKE_NVML, power);
  sweep(*d);
  auto r = power->set_limit_mw(0, 250000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::error_code(4, nvml_category()));
  EXPECT_NE(r.error().message().find("needs root or CAP_SYS_ADMIN"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("Insufficient Permissions"), std::string::npos);
  EXPECT_TRUE(power->set_limit_mw(1, 250000));  // GPU 1 is not scripted to refuse
}

TEST_F(NvmlDriverTest, PowerLimitNotSupportedByTheGpuSaysSo) {
  auto power = std::make_shared<NvmlPower>();
  auto d = driver_for(power_scenario("error 1 nvmlDeviceSetPowerManagementLimit 3\n"),
                      milliseconds(1000), GRIDNODE_FAKE_NVML, power);
  sweep(*d);
  auto r = power->set_limit_mw(1, 250000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::error_code(3, nvml_category()));
  EXPECT_NE(r.error().message().find("does not support power management limits"),
            std::string::npos)
      << r.error().message();
}

TEST_F(NvmlDriverTest, PowerLimitOnALostGpuFailsAndTheOtherStillWorks) {
  auto power = std::make_shared<NvmlPower>();
  auto d = driver_for(power_scenario("lost 0 1\n"), milliseconds(1000), GRIDNODE_FAKE_NVML,
                      power);
  sweep(*d);
  sweep(*d);  // step 1: GPU 0 is lost
  auto r = power->set_limit_mw(0, 250000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::error_code(15, nvml_category()));
  EXPECT_NE(r.error().message().find("fell off the bus"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(power->read_limits(0));
  EXPECT_TRUE(power->set_limit_mw(1, 250000));
}

TEST_F(NvmlDriverTest, PowerLimitWithAnOlderLibraryIsNotSupported) {
  auto power = std::make_shared<NvmlPower>();
  auto d = driver_for(power_scenario(), milliseconds(1000), GRIDNODE_FAKE_NVML_OLD, power);
  sweep(*d);
  auto limits = power->read_limits(0);  // the getter is there; the bounds are not
  ASSERT_TRUE(limits) << limits.error().message();
  EXPECT_EQ(limits->current_mw, 700000u);
  EXPECT_EQ(limits->max_mw, 0u);
  auto r = power->set_limit_mw(0, 250000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::function_not_supported);
  EXPECT_NE(r.error().message().find("no nvmlDeviceSetPowerManagementLimit"), std::string::npos)
      << r.error().message();
  // The sweep is unharmed.
  EXPECT_EQ(value_of(sweep_text(sweep(*d)), "DCGM_FI_DEV_POWER_MGMT_LIMIT", 0), "700");
}

TEST_F(NvmlDriverTest, PowerLimitBeforeDiscoveryAndOnAnUnknownGpu) {
  auto power = std::make_shared<NvmlPower>();
  auto d = driver_for(power_scenario(), milliseconds(1000), GRIDNODE_FAKE_NVML, power);
  auto early = power->set_limit_mw(0, 250000);  // no sweep yet: NVML not even initialised
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, std::errc::resource_unavailable_try_again);
  sweep(*d);
  auto unknown = power->set_limit_mw(7, 250000);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, std::errc::no_such_device);
  EXPECT_NE(unknown.error().message().find("NVML found 2"), std::string::npos);
  d.reset();  // the driver shuts NVML down: its handles are withdrawn first
  EXPECT_EQ(power->set_limit_mw(0, 250000).error().code,
            std::errc::resource_unavailable_try_again);
}

TEST_F(NvmlDriverTest, HungPowerLimitCallTimesOutWithinTheDeadline) {
  auto power = std::make_shared<NvmlPower>();
  auto d = driver_for(power_scenario("hang 0 nvmlDeviceSetPowerManagementLimit 0 2000\n"),
                      milliseconds(100), GRIDNODE_FAKE_NVML, power);
  sweep(*d);
  auto t0 = std::chrono::steady_clock::now();
  auto r = power->set_limit_mw(0, 250000);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::timed_out);
  EXPECT_LT(took, milliseconds(1000));
  // The worker is still inside the call: the next one is refused at once, not queued.
  auto again = power->set_limit_mw(1, 250000);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message().find("has not returned"), std::string::npos);
}

TEST(NvmlCategory, NamesNvmlsErrors) {
  EXPECT_EQ(std::error_code(15, nvml_category()).message(), "GPU is lost");
  EXPECT_EQ(std::error_code(3, nvml_category()).message(), "Not Supported");
  EXPECT_STREQ(nvml_category().name(), "nvml");
}

}  // namespace
}  // namespace gridnode::drivers
