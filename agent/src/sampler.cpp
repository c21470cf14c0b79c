#include "gridnode/agent/sampler.hpp"

#include <algorithm>

#include <asio/post.hpp>

#include "gridnode/platform/log.hpp"

namespace gridnode::agent {

using platform::Level;
using platform::LogLine;

std::string_view to_string(DriverState state) {
  switch (state) {
    case DriverState::pending:
      return "pending";
    case DriverState::up:
      return "up";
    case DriverState::absent:
      return "absent";
    case DriverState::down:
      return "down";
    case DriverState::stalled:
      return "stalled";
  }
  return "?";
}

Sampler::Sampler(asio::io_context& io, std::vector<std::unique_ptr<drivers::Driver>> drivers,
                 Options options)
    : io_(io),
      options_(options),
      slots_(drivers.size()),
      pool_(std::clamp<std::size_t>(drivers.size(), 1, 4)),
      timer_(io) {
  for (std::size_t i = 0; i < drivers.size(); ++i) {
    slots_[i].driver = std::move(drivers[i]);
    slots_[i].deadline = std::make_unique<asio::steady_timer>(io);
  }
}

Sampler::~Sampler() {
  stop();
  // A hung driver would keep join() waiting forever; the process is exiting anyway, so the
  // pool is stopped (queued work dropped) and joined only for threads that can finish.
  pool_.stop();
  pool_.join();
}

void Sampler::start() {
  stopped_ = false;
  timer_.expires_after(std::chrono::nanoseconds(0));
  do_tick();
}

void Sampler::run_once(std::function<void()> done) {
  stopped_ = false;
  once_done_ = std::move(done);
  begin_round();
  if (outstanding_ == 0 && once_done_) {
    auto cb = std::move(once_done_);
    cb();
  }
}

void Sampler::stop() {
  stopped_ = true;
  timer_.cancel();
  for (auto& s : slots_) {
    s.deadline->cancel();
  }
}

void Sampler::do_tick() {
  if (stopped_) {
    return;
  }
  begin_round();
  // Re-arm from the previous expiry so the cadence does not drift; if we are more than a
  // period late (the host was suspended, the loop starved), skip to the next slot, no burst.
  auto now = std::chrono::steady_clock::now();
  auto next = timer_.expiry() + options_.interval;
  if (next <= now) {
    next = now + options_.interval;
  }
  timer_.expires_at(next);
  timer_.async_wait([this](const std::error_code& ec) {
    if (ec) {
      return;  // operation_aborted: stop() was called
    }
    do_tick();
  });
}

void Sampler::begin_round() {
  // Every idle driver is submitted; a busy one (slow or hung) is skipped, so a stuck chip never
  // makes work pile up. Only this round's submissions count towards its completion: a late
  // result from an earlier round must not complete this one.
  outstanding_ = 0;
  round_started_ = std::chrono::system_clock::now();
  for (auto& slot : slots_) {
    slot.in_round = false;
  }
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    submit(i);
  }
}

void Sampler::submit(std::size_t index) {
  DriverSlot& slot = slots_[index];
  if (slot.busy) {
    return;
  }
  slot.busy = true;
  slot.in_round = true;
  ++outstanding_;
  std::uint64_t generation = ++slot.generation;
  slot.back.reset();
  drivers::Driver* driver = slot.driver.get();
  drivers::Sweep* back = &slot.back;
  asio::post(pool_, [this, index, generation, driver, back] {
    auto t0 = std::chrono::steady_clock::now();
    platform::Result<void> result = driver->sweep(*back);
    auto took = std::chrono::steady_clock::now() - t0;
    asio::post(io_, [this, index, generation, result = std::move(result), took]() mutable {
      on_result(index, generation, std::move(result), took);
    });
  });
  slot.deadline->expires_after(options_.sweep_timeout);
  slot.deadline->async_wait([this, index, generation](const std::error_code& ec) {
    if (!ec) {
      on_deadline(index, generation);
    }
  });
}

void Sampler::on_deadline(std::size_t index, std::uint64_t generation) {
  DriverSlot& slot = slots_[index];
  if (!slot.busy || slot.generation != generation) {
    return;
  }
  if (slot.state != DriverState::stalled) {
    platform::log(Level::warning, "sampler",
                  LogLine("driver stalled: sweep past its deadline")
                      .kv("driver", slot.driver->name())
                      .kv("timeout_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                            options_.sweep_timeout)
                                            .count()));
  }
  slot.state = DriverState::stalled;
  slot.last_error = "sweep did not finish within its deadline";
  // Its last values are no longer current: publish none rather than stale ones.
  slot.front.reset();
  slot.front.catalog.reset();
  ++slot.errors_total;
  // The sweep is still running and keeps `busy`; the round need not wait for it.
  finish(index);
}

void Sampler::on_result(std::size_t index, std::uint64_t generation,
                        platform::Result<void> result, std::chrono::nanoseconds took) {
  DriverSlot& slot = slots_[index];
  if (slot.generation != generation) {
    return;
  }
  slot.busy = false;
  slot.deadline->cancel();
  slot.last_duration = took;
  ++slot.sweeps_total;
  // What the sweep saw happen did happen, whether or not the sweep succeeded: its events wait
  // in incoming_events for the round that hands them on (front keeps none).
  for (auto& e : slot.back.events) {
    slot.incoming_events.push_back(std::move(e));
  }
  slot.back.events.clear();
  DriverState old = slot.state;
  if (result && slot.back.readings.empty() && slot.back.errors == 0) {
    // The source is there but holds nothing (an empty /sys/class/thermal on a VM): for the
    // operator that is "found nothing", not "up".
    result = platform::fail(std::errc::no_such_file_or_directory, {});
  }
  if (result) {
    std::swap(slot.front, slot.back);
    slot.errors_total += slot.front.errors;
    slot.state = DriverState::up;
    slot.last_error.clear();
    slot.last_success = std::chrono::steady_clock::now();
  } else {
    bool absent = result.error().code == std::errc::no_such_file_or_directory;
    slot.state = absent ? DriverState::absent : DriverState::down;
    slot.last_error = result.error().context.empty() && absent ? "source present but empty"
                                                               : result.error().message();
    // What was there is no longer true: no stale values for a source that is gone.
    slot.front.reset();
    slot.front.catalog.reset();
    if (!absent) {
      ++slot.errors_total;
    }
  }
  if (slot.state != old) {
    // State changes are rare and worth a line; "absent" is ordinary on a VM, so info.
    Level level = slot.state == DriverState::down ? Level::warning
                  : slot.state == DriverState::up && old != DriverState::pending
                      ? Level::notice
                      : Level::info;
    LogLine line(slot.state == DriverState::up ? "driver up" : "driver not reporting");
    line.kv("driver", slot.driver->name()).kv("state", to_string(slot.state));
    if (!slot.last_error.empty()) {
      line.kv("err", slot.last_error);
    }
    platform::log(level, "sampler", line);
  }
  finish(index);
}

void Sampler::finish(std::size_t index) {
  DriverSlot& slot = slots_[index];
  if (!slot.in_round) {
    return;
  }
  slot.in_round = false;
  if (--outstanding_ != 0) {
    return;
  }
  ++rounds_;
  last_round_ = std::chrono::steady_clock::now();
  for (auto& s : slots_) {
    // This round hands on what came back since the last one (the two vectors trade places and
    // keep their capacity: no allocation in the steady state).
    s.new_events.clear();
    std::swap(s.new_events, s.incoming_events);
  }
  if (once_done_) {
    auto cb = std::move(once_done_);
    cb();
  }
  if (on_round_) {
    on_round_();
  }
}

}  // namespace gridnode::agent
