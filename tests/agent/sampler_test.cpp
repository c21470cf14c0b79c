#include "gridnode/agent/sampler.hpp"

#include <gtest/gtest.h>

#include <asio/steady_timer.hpp>

#include "fake_driver.hpp"
#include "gridnode/agent/device_events.hpp"

namespace gridnode::agent {
namespace {

using gridnode::testing::FakeDriver;
using namespace std::chrono_literals;

// Runs `io` until `done()` holds or `limit` passes (a deadline, not a sleep).
template <class Pred>
bool run_until(asio::io_context& io, Pred done, std::chrono::milliseconds limit = 5000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < end) {
    io.restart();
    io.run_for(5ms);
  }
  return done();
}

struct Rig {
  asio::io_context io{1};
  std::vector<FakeDriver*> fakes;
  std::unique_ptr<Sampler> sampler;

  explicit Rig(std::vector<std::string> names, Sampler::Options o = {50ms, 200ms}) {
    std::vector<std::unique_ptr<drivers::Driver>> ds;
    for (auto& n : names) {
      auto d = std::make_unique<FakeDriver>(n);
      fakes.push_back(d.get());
      ds.push_back(std::move(d));
    }
    sampler = std::make_unique<Sampler>(io, std::move(ds), o);
  }
};

TEST(Sampler, RunOnceCollectsEveryDriver) {
  Rig rig({"a", "b"});
  bool done = false;
  rig.sampler->run_once([&] { done = true; });
  ASSERT_TRUE(run_until(rig.io, [&] { return done; }));
  for (const auto& s : rig.sampler->slots()) {
    EXPECT_EQ(s.state, DriverState::up);
    EXPECT_EQ(s.front.readings.size(), 3u);
    EXPECT_EQ(s.sweeps_total, 1u);
  }
}

TEST(Sampler, PeriodicRoundsAndErrorCounting) {
  Rig rig({"a"});
  rig.fakes[0]->errors = 2;
  rig.sampler->start();
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.sampler->rounds() >= 3; }));
  rig.sampler->stop();
  const auto& s = rig.sampler->slots()[0];
  EXPECT_GE(s.errors_total, 6u);
  EXPECT_EQ(s.errors_total, 2 * s.sweeps_total);
}

TEST(Sampler, AbsentAndDownAreDistinctAndLeaveNoStaleValues) {
  Rig rig({"a", "b"});
  bool done = false;
  rig.sampler->run_once([&] { done = true; });
  ASSERT_TRUE(run_until(rig.io, [&] { return done; }));
  ASSERT_EQ(rig.sampler->slots()[0].front.readings.size(), 3u);

  rig.fakes[0]->failure = std::errc::no_such_file_or_directory;
  rig.fakes[1]->failure = std::errc::io_error;
  done = false;
  rig.sampler->run_once([&] { done = true; });
  ASSERT_TRUE(run_until(rig.io, [&] { return done; }));
  EXPECT_EQ(rig.sampler->slots()[0].state, DriverState::absent);
  EXPECT_EQ(rig.sampler->slots()[1].state, DriverState::down);
  EXPECT_TRUE(rig.sampler->slots()[0].front.readings.empty());
  EXPECT_TRUE(rig.sampler->slots()[1].front.readings.empty());
  EXPECT_EQ(rig.sampler->slots()[0].errors_total, 0u);  // absent is not an error
  EXPECT_EQ(rig.sampler->slots()[1].errors_total, 1u);
  EXPECT_NE(rig.sampler->slots()[1].last_error.find("scripted failure"), std::string::npos);
}

TEST(Sampler, HungDriverIsMarkedStalledAndDoesNotHoldUpOthers) {
  Rig rig({"hung", "ok"}, {50ms, 100ms});
  rig.fakes[0]->gate();
  rig.sampler->start();
  // The healthy driver keeps completing rounds while the other is stuck.
  // (Rounds and the healthy driver's sweeps are counted at different moments: a loaded machine
  // once saw 5 sweeps with the 4th round not yet counted. Wait for both.)
  ASSERT_TRUE(run_until(rig.io, [&] {
    return rig.sampler->slots()[1].sweeps_total >= 5 && rig.sampler->rounds() >= 4;
  }));
  EXPECT_EQ(rig.sampler->slots()[0].state, DriverState::stalled);
  EXPECT_TRUE(rig.sampler->slots()[0].front.readings.empty());  // no stale values
  EXPECT_EQ(rig.fakes[0]->calls.load(), 1);  // never submitted again while busy
  // Once it comes back it is up again and sampled as usual.
  rig.fakes[0]->open_gate();
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.sampler->slots()[0].sweeps_total >= 2; }));
  EXPECT_EQ(rig.sampler->slots()[0].state, DriverState::up);
  rig.sampler->stop();
}

TEST(Sampler, FrontBufferKeepsCapacityAcrossSweeps) {
  Rig rig({"a"});
  rig.sampler->start();
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.sampler->rounds() >= 2; }));
  const auto* before_front = rig.sampler->slots()[0].front.readings.data();
  const auto* before_back = rig.sampler->slots()[0].back.readings.data();
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.sampler->rounds() >= 6; }));
  rig.sampler->stop();
  // Double buffering: the two vectors swap, neither is reallocated.
  auto after = rig.sampler->slots()[0].front.readings.data();
  EXPECT_TRUE(after == before_front || after == before_back);
}

// A driver's device events reach the round's consumers exactly once: also when its sweep spans
// ticks (a first BMC reading under load) and its next sweep comes back before any round ends in
// between (the first sweep's SEL entries were lost so: the slot's front was replaced before a
// round read it), and not again in the rounds while it is busy.
TEST(Sampler, DeviceEventsAreHandedOnOnceEvenWhenASweepSpansTicks) {
  Rig rig({"slow", "fast"}, {50ms, 5000ms});
  DeviceEventLog log;
  std::vector<std::string> seen;
  rig.sampler->on_round([&] {
    log.on_round(rig.sampler->slots(), std::chrono::system_clock::now());
    for (const auto& s : rig.sampler->slots()) {
      for (const auto& e : s.new_events) {
        seen.push_back(e.message);
      }
    }
  });
  const auto& slow = rig.sampler->slots()[0];
  const auto& fast = rig.sampler->slots()[1];
  rig.fakes[0]->add_event({4, "E1", {}});
  rig.fakes[0]->gate();
  rig.sampler->start();
  ASSERT_TRUE(run_until(rig.io, [&] { return fast.sweeps_total >= 3; }));  // rounds without slow
  // Hang the fast one so that no round can end between the slow driver's two sweeps.
  rig.fakes[1]->gate();
  int calls = rig.fakes[1]->calls.load();
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.fakes[1]->calls.load() > calls; }));
  std::size_t rounds = rig.sampler->rounds();
  rig.fakes[0]->open_gate();
  ASSERT_TRUE(run_until(rig.io, [&] { return slow.sweeps_total >= 1; }));
  rig.fakes[0]->add_event({4, "E2", {}});
  ASSERT_TRUE(run_until(rig.io, [&] { return slow.sweeps_total >= 2 && rig.sampler->rounds() > rounds; }));
  EXPECT_EQ(seen, (std::vector<std::string>{"E1", "E2"}));
  // Busy again (gated) for several rounds: nothing is handed on twice.
  rig.fakes[0]->gate();
  rig.fakes[1]->open_gate();
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.sampler->rounds() >= rounds + 6; }));
  rig.sampler->stop();
  rig.fakes[0]->open_gate();
  EXPECT_EQ(seen, (std::vector<std::string>{"E1", "E2"}));
  EXPECT_EQ(log.to_json(std::nullopt).size(), 2u);
}

}  // namespace
}  // namespace gridnode::agent

namespace gridnode::agent {
namespace {

TEST(Sampler, ASourceWithNothingInItIsAbsentNotUp) {
  Rig rig({"empty"});
  rig.fakes[0]->series = 0;
  bool done = false;
  rig.sampler->run_once([&] { done = true; });
  ASSERT_TRUE(run_until(rig.io, [&] { return done; }));
  EXPECT_EQ(rig.sampler->slots()[0].state, DriverState::absent);
  EXPECT_EQ(rig.sampler->slots()[0].last_error, "source present but empty");
}

}  // namespace
}  // namespace gridnode::agent
