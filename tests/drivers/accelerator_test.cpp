#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "../../drivers/src/accelerator/device_set.hpp"
#include "../../drivers/src/accelerator/dl_library.hpp"

// The shape every dlopen'd accelerator driver shares (drivers/src/accelerator/). The drivers'
// own tests (nvml_test, ascend_test) run it against their fakes; these pin its contracts.
namespace gridnode::drivers::accelerators {
namespace {

using std::chrono::milliseconds;

TEST(DlLibrary, MissingLibraryIsAbsentAndAMissingRequiredSymbolIsNamed) {
  auto none = DlLibrary::open("/nonexistent/libvendor.so");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, std::errc::no_such_file_or_directory);
  auto lib = DlLibrary::open(GRIDNODE_FAKE_DCMI);
  ASSERT_TRUE(lib) << lib.error().message();
  int (*init)() = nullptr;
  int (*missing)() = nullptr;
  (*lib)->find("dcmi_init", init);
  (*lib)->find("dcmi_no_such_call", missing);
  EXPECT_NE(init, nullptr);
  EXPECT_EQ(missing, nullptr);
  // The older name stands in for the newer one.
  (*lib)->find_either("dcmi_no_such_call", "dcmi_init", missing);
  EXPECT_EQ(missing, init);
  auto refused = (*lib)->require({{"dcmi_init", true}, {"dcmi_frob", false}}, "too old");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, std::errc::function_not_supported);
  EXPECT_EQ(refused.error().context, std::string(GRIDNODE_FAKE_DCMI) + ": no dcmi_frob (too old)");
}

TEST(DeviceSlot, SettlesIntoUpDegradedLostOnceEach) {
  DeviceSlot d;
  d.fresh = true;
  EXPECT_TRUE(settle(d, false).answering);
  d.fresh = false;  // past its deadline
  auto s = settle(d, false);
  EXPECT_FALSE(s.answering);
  EXPECT_EQ(s.change, HealthChange::degraded);
  EXPECT_EQ(settle(d, false).change, HealthChange::none);  // told once
  d.fresh = true;
  s = settle(d, false);
  EXPECT_TRUE(s.answering);
  EXPECT_EQ(s.change, HealthChange::recovered);
  s = settle(d, true);
  EXPECT_FALSE(s.answering);
  EXPECT_EQ(s.change, HealthChange::lost);
  EXPECT_EQ(settle(d, false).change, HealthChange::none);  // lost stays lost
  EXPECT_FALSE(can_ask(d));
}

TEST(DeviceSlot, ReadAllWaitsOneDeadlineForAllAndSkipsABusyWorker) {
  std::vector<DeviceSlot> devices(3);
  auto slot = [](DeviceSlot& d) -> DeviceSlot& { return d; };
  int started = 0;
  auto t0 = std::chrono::steady_clock::now();
  read_all(
      devices, slot,
      [&](DeviceSlot& d) {
        ++started;
        bool slow = &d == &devices[1];
        d.worker->submit([slow] { std::this_thread::sleep_for(milliseconds(slow ? 400 : 0)); });
      },
      milliseconds(100));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(350));
  EXPECT_EQ(started, 3);
  EXPECT_TRUE(devices[0].fresh);
  EXPECT_FALSE(devices[1].fresh);
  EXPECT_TRUE(devices[2].fresh);
  started = 0;
  read_all(
      devices, slot, [&](DeviceSlot& d) { ++started, d.worker->submit([] {}); }, milliseconds(100));
  EXPECT_EQ(started, 2);  // the one still in its call is not asked again
  EXPECT_FALSE(devices[1].fresh);
  devices[1].worker->wait_until(std::chrono::steady_clock::now() + milliseconds(2000));
}

TEST(ControlWorker, TimesOutAndRefusesWhileTheEarlierCallIsOut) {
  ControlWorker c("DCMI");
  EXPECT_TRUE(c.call([] {}, "dcmi_init", milliseconds(100)));
  auto r =
      c.call([] { std::this_thread::sleep_for(milliseconds(300)); }, "dcmi_init", milliseconds(50));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().context, "dcmi_init did not return within 50 ms");
  auto again = c.call([] {}, "dcmi_get_card_num_list", milliseconds(50));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().context, "dcmi_get_card_num_list: an earlier DCMI call has not returned");
  c.worker().wait_until(std::chrono::steady_clock::now() + milliseconds(2000));
}

TEST(DeviceEvents, CarryTheStateAndSayWhatHappened) {
  auto lost = lost_event("ascend", "NPU 5 (910B3)", "DCMI_ERR_CODE_DEVICE_NOT_EXIST",
                         {{"id", "5"}, {"vdie_id", "X"}});
  EXPECT_EQ(lost.severity, 3);
  EXPECT_EQ(lost.message, "NPU 5 (910B3) fell off the bus (DCMI_ERR_CODE_DEVICE_NOT_EXIST)");
  EXPECT_EQ(lost.fields, (Labels{{"id", "5"}, {"state", "lost"}, {"vdie_id", "X"}}));
  auto hung = health_event("nvml", "GPU 0 (GPU-1)", true, "an NVML call", milliseconds(150), {});
  EXPECT_EQ(hung.severity, 4);
  EXPECT_EQ(hung.message, "GPU 0 (GPU-1) not answering: an NVML call did not return within 150 ms");
  auto back = health_event("nvml", "GPU 0 (GPU-1)", false, "an NVML call", milliseconds(150), {});
  EXPECT_EQ(back.severity, 6);
  EXPECT_EQ(back.fields, (Labels{{"state", "up"}}));
}

}  // namespace
}  // namespace gridnode::drivers::accelerators
