#include "gridnode/agent/report_builder.hpp"

#include <gtest/gtest.h>

#include "fake_driver.hpp"

namespace gridnode::agent {
namespace {

using gridnode::testing::FakeDriver;
using namespace std::chrono_literals;

struct Rig {
  asio::io_context io{1};
  FakeDriver* fake = nullptr;
  std::unique_ptr<Sampler> sampler;
  ReportBuilder builder{60};
  protocol::ReportHeader header;
  std::uint64_t seq = 0;

  Rig() {
    std::vector<std::unique_ptr<drivers::Driver>> ds;
    auto d = std::make_unique<FakeDriver>("nvml");
    fake = d.get();
    ds.push_back(std::move(d));
    sampler = std::make_unique<Sampler>(io, std::move(ds), Sampler::Options{50ms, 2000ms});
    header.node_id = "node-a";
  }

  // One round, then the report built from it, decoded back: its events.
  std::vector<protocol::Event> round() {
    bool done = false;
    sampler->run_once([&] { done = true; });
    io.restart();
    while (!done) {
      io.run_one_for(10ms);
    }
    header.seq = ++seq;
    protocol::Bytes message;
    builder.build(sampler->slots(), header, message);
    auto report = protocol::decode_header(message);
    EXPECT_TRUE(report) << (report ? "" : report.error().message());
    return report ? report->events : std::vector<protocol::Event>{};
  }
};

std::vector<protocol::Event> device_events(const std::vector<protocol::Event>& all) {
  std::vector<protocol::Event> out;
  for (const auto& e : all) {
    if (e.kind == protocol::EventKind::device) {
      out.push_back(e);
    }
  }
  return out;
}

TEST(ReportBuilder, DeviceEventsReachTheReportExactlyOnce) {
  Rig rig;
  rig.round();
  rig.fake->add_event(
      {4, "GPU 1 (GPU-x): XID 79", {{"UUID", "GPU-x"}, {"gpu", "1"}, {"xid", "79"}}});
  auto events = device_events(rig.round());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].source, "nvml");
  EXPECT_EQ(events[0].severity, 4);
  EXPECT_EQ(events[0].message, "GPU 1 (GPU-x): XID 79");
  EXPECT_EQ(events[0].fields, (platform::Labels{{"UUID", "GPU-x"}, {"gpu", "1"}, {"xid", "79"}}));
  EXPECT_TRUE(device_events(rig.round()).empty());
}

TEST(ReportBuilder, EventsOfAFailedSweepAreKept) {
  Rig rig;
  rig.round();
  rig.fake->failure = std::errc::io_error;
  rig.fake->add_event({3, "GPU 0 fell off the bus", {{"gpu", "0"}, {"state", "lost"}}});
  auto all = rig.round();
  auto events = device_events(all);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].message, "GPU 0 fell off the bus");
  // The driver's own state change is there too.
  EXPECT_TRUE(std::any_of(all.begin(), all.end(), [](const protocol::Event& e) {
    return e.kind == protocol::EventKind::driver_state;
  }));
}

}  // namespace
}  // namespace gridnode::agent
