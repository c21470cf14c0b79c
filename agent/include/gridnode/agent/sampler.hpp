#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include "gridnode/drivers/driver.hpp"

namespace gridnode::agent {

// How a driver is doing, as gridnodectl status and gridnode_driver_up show it.
enum class DriverState : std::uint8_t {
  pending,  // no sweep finished yet
  up,       // last sweep succeeded
  absent,   // the source does not exist on this host (no hwmon chips, no RAPL)
  down,     // last sweep failed
  stalled,  // a sweep ran past its deadline and has not come back
};
std::string_view to_string(DriverState state);

// One driver's latest sweep and its health. Touched only on the loop thread.
struct DriverSlot {
  std::unique_ptr<drivers::Driver> driver;
  drivers::Sweep front;  // the latest completed sweep, read by exposition and the socket
  drivers::Sweep back;   // handed to the worker; swapped with front when it comes back
  // The device events of the sweeps that came back before the last completed round and after
  // the one before it: read them after that round (in on_round, or after run_once); front.events
  // is always empty. Each event is in exactly one round's new_events, also when a sweep spans a
  // tick (a slow first reading) and two of a driver's sweeps come back between rounds, or a
  // busy driver's front outlives several rounds.
  std::vector<drivers::DeviceEvent> new_events;
  std::vector<drivers::DeviceEvent> incoming_events;  // since the last completed round
  DriverState state = DriverState::pending;
  std::string last_error;                   // why it is down / absent
  std::uint64_t errors_total = 0;           // readings skipped + sweeps failed, since start
  std::uint64_t sweeps_total = 0;
  std::chrono::nanoseconds last_duration{0};
  std::chrono::steady_clock::time_point last_success{};  // zero until the first success
  // In-flight bookkeeping: a late result is recognised by its generation and dropped.
  bool busy = false;
  bool in_round = false;  // submitted in the current round and not yet finished
  std::uint64_t generation = 0;
  std::unique_ptr<asio::steady_timer> deadline;
};

// Runs every driver's sweep on a worker pool every `interval`, keeps the latest result of each,
// and never lets one slow or hung driver hold up the loop or the others: a driver still busy is
// not submitted again, and one past its deadline is marked stalled.
//
// Lives on the loop thread: every member function must be called from `io`'s thread.
class Sampler {
 public:
  struct Options {
    std::chrono::nanoseconds interval = std::chrono::seconds(1);
    std::chrono::nanoseconds sweep_timeout = std::chrono::seconds(5);
  };

  // `drivers` are owned from here on. The pool gets one thread per driver (at most 4), so a
  // driver stuck in the kernel can only ever hold its own thread.
  Sampler(asio::io_context& io, std::vector<std::unique_ptr<drivers::Driver>> drivers,
          Options options);
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Starts periodic sampling; the first round starts at once.
  void start();
  // Runs exactly one round; `done` is called on the loop when every driver has reported or
  // hit its deadline.
  void run_once(std::function<void()> done);
  // Cancels timers; in-flight sweeps finish on the pool and are dropped.
  void stop();

  void set_interval(std::chrono::nanoseconds interval) { options_.interval = interval; }
  void set_sweep_timeout(std::chrono::nanoseconds t) { options_.sweep_timeout = t; }
  std::chrono::nanoseconds interval() const { return options_.interval; }

  // Called on the loop after each round in which every driver has reported at least once.
  void on_round(std::function<void()> callback) { on_round_ = std::move(callback); }

  const std::vector<DriverSlot>& slots() const { return slots_; }
  // Whether a sweep is still running on the pool (a hung driver: exit without joining it).
  bool any_busy() const {
    return std::any_of(slots_.begin(), slots_.end(), [](const DriverSlot& s) { return s.busy; });
  }
  std::uint64_t rounds() const { return rounds_; }
  // When the current (or last) round started, wall clock: the sampling time of its readings.
  std::chrono::system_clock::time_point round_started() const { return round_started_; }
  // When the newest round completed (zero before the first).
  std::chrono::steady_clock::time_point last_round() const { return last_round_; }

 private:
  void do_tick();
  void begin_round();
  void submit(std::size_t index);
  void on_result(std::size_t index, std::uint64_t generation, platform::Result<void> result,
                 std::chrono::nanoseconds took);
  void on_deadline(std::size_t index, std::uint64_t generation);
  void finish(std::size_t index);

  asio::io_context& io_;
  Options options_;
  std::vector<DriverSlot> slots_;
  asio::thread_pool pool_;
  asio::steady_timer timer_;
  std::size_t outstanding_ = 0;  // drivers of the current round not yet finished
  std::uint64_t rounds_ = 0;
  std::chrono::steady_clock::time_point last_round_{};
  std::chrono::system_clock::time_point round_started_{};
  std::function<void()> on_round_;
  std::function<void()> once_done_;
  bool stopped_ = false;
};

}  // namespace gridnode::agent
