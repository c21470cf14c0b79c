#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gridnode/drivers/driver.hpp"

namespace gridnode::testing {

// A Driver whose behaviour a test scripts: a fixed catalog of `n` gauges, a result to return,
// and an optional gate that holds sweep() until the test opens it (a hung chip).
class FakeDriver final : public drivers::Driver {
 public:
  explicit FakeDriver(std::string name, std::size_t n = 3) : name_(std::move(name)) {
    auto c = std::make_shared<drivers::Catalog>();
    auto f = c->add_family({"fake_" + name_ + "_celsius", "A fake temperature.",
                            drivers::MetricType::gauge, {1, -3}, "°C"});
    for (std::size_t i = 0; i < n; ++i) {
      c->add_series(f, {{"sensor", "s" + std::to_string(i)}});
    }
    catalog_ = c;
  }

  std::string_view name() const override { return name_; }

  platform::Result<void> sweep(drivers::Sweep& out) override {
    ++calls;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !gated_; });
    }
    {
      std::lock_guard lock(mu_);
      out.events = std::move(events_);
      events_.clear();
    }
    if (failure) {
      return platform::fail(*failure, name_ + ": scripted failure");
    }
    out.catalog = catalog_;
    for (std::uint32_t i = 0; i < std::min<std::size_t>(series, catalog_->series.size()); ++i) {
      out.readings.push_back({i, drivers::Value::of_signed(value + i)});
    }
    out.errors = errors;
    return {};
  }

  // The next sweep reports this device event (an XID, a lost GPU).
  void add_event(drivers::DeviceEvent e) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }

  void gate() {
    std::lock_guard lock(mu_);
    gated_ = true;
  }
  void open_gate() {
    {
      std::lock_guard lock(mu_);
      gated_ = false;
    }
    cv_.notify_all();
  }

  std::atomic<int> calls{0};
  std::atomic<std::int64_t> value{41500};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::size_t> series{SIZE_MAX};  // how many of the catalog's series to report
  std::optional<std::errc> failure;  // set before the sweep that should fail

 private:
  std::string name_;
  std::shared_ptr<const drivers::Catalog> catalog_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<drivers::DeviceEvent> events_;
  bool gated_ = false;
};

}  // namespace gridnode::testing
