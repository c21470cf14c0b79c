// BM_LimitsEvaluate/N: the policy's per-round cost, N limits (each on one sensor, plus every
// fourth on a whole family) judged against a round of 300 readings, steady state (no event).
// Compare with BM_HwmonSweep (hwmon_bench), the sweep that produced such a round. Figures in
// docs/policy.md, "Costs".
// BM_IntegrityHash: SHA-256 of a file through hash_file, uncapped (page cache warm), and
// BM_IntegrityHashCapped/CAP: the same with the bandwidth cap, whose bytes/s must match CAP.
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gridnode/agent/policy_checks.hpp"

namespace gridnode::agent {
namespace {

struct Round {
  std::vector<DriverSlot> slots;
  Round() {
    auto c = std::make_shared<platform::Catalog>();
    auto f = c->add_family({"node_hwmon_temp_celsius", "t", platform::MetricType::gauge,
                            {1, -3}, "°C"});
    slots.emplace_back();
    for (int chip = 0; chip < 4; ++chip) {
      for (int s = 1; s <= 75; ++s) {
        auto i = c->add_series(f, {{"chip", "chip" + std::to_string(chip)},
                                   {"sensor", "temp" + std::to_string(s)}});
        slots[0].front.readings.push_back({i, platform::Value::of_signed(40000 + s)});
      }
    }
    slots[0].front.catalog = c;
    slots[0].state = DriverState::up;
  }
};

std::vector<LimitRule> rules(int n) {
  std::vector<LimitRule> out;
  for (int i = 0; i < n; ++i) {
    LimitRule r;
    r.name = "r" + std::to_string(i);
    r.metric = "node_hwmon_temp_celsius";
    if (i % 4 != 0) {
      r.match = {{"chip", "chip" + std::to_string(i % 4)},
                 {"sensor", "temp" + std::to_string(1 + i % 75)}};
    }
    r.threshold = 90;
    r.clear = 85;
    out.push_back(std::move(r));
  }
  return out;
}

void BM_LimitsEvaluate(benchmark::State& state) {
  Round round;
  LimitsEvaluator ev;
  ev.set_rules(rules(static_cast<int>(state.range(0))));
  std::vector<LimitTransition> out;
  auto now = std::chrono::steady_clock::now();
  ev.evaluate(round.slots, now, out);  // binds the catalog once, as the first round does
  for (auto _ : state) {
    out.clear();
    ev.evaluate(round.slots, now, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(round.slots[0].front.readings.size()));
  state.counters["bound_series"] = static_cast<double>(ev.bound_series());
}
BENCHMARK(BM_LimitsEvaluate)->Arg(10)->Arg(100)->Arg(300)->Arg(1000);

class TempFile {
 public:
  explicit TempFile(std::size_t bytes) {
    const char* base = std::getenv("TMPDIR");
    path_ = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/gn-hash-XXXXXX";
    int fd = ::mkstemp(path_.data());
    std::string chunk(1 << 20, 'm');
    for (std::size_t done = 0; done < bytes; done += chunk.size()) {
      if (::write(fd, chunk.data(), chunk.size()) < 0) {
        std::abort();
      }
    }
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void BM_IntegrityHash(benchmark::State& state) {
  TempFile f(64 << 20);
  std::atomic<bool> cancel{false};
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(hash_file(f.path(), 0, cancel, &bytes));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_IntegrityHash)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_IntegrityHashCapped(benchmark::State& state) {
  const auto cap = static_cast<std::uint64_t>(state.range(0)) << 20;
  TempFile f(cap / 4);  // a quarter second's worth
  std::atomic<bool> cancel{false};
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(hash_file(f.path(), cap, cancel, &bytes));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_IntegrityHashCapped)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(4);

}  // namespace
}  // namespace gridnode::agent
