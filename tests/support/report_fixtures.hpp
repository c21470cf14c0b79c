#pragma once

// Random catalogs and value sequences for protocol tests, fuzz seeds and benchmarks.
// Header-only so that bench/ and fuzz/ can use it without the test support library.

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gridnode/platform/metrics.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::testing {

inline std::string random_name(std::mt19937_64& rng, std::size_t max_len) {
  static constexpr char kFirst[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
  static constexpr char kRest[] = "abcdefghijklmnopqrstuvwxyz0123456789_";
  std::size_t len = 1 + rng() % max_len;
  std::string s(1, kFirst[rng() % (sizeof(kFirst) - 1)]);
  while (s.size() < len) {
    s += kRest[rng() % (sizeof(kRest) - 1)];
  }
  return s;
}

inline platform::Catalog random_catalog(std::mt19937_64& rng, std::size_t families,
                                        std::size_t series) {
  platform::Catalog c;
  for (std::size_t f = 0; f < families; ++f) {
    platform::Family fam;
    fam.name = "m" + std::to_string(f) + "_" + random_name(rng, 24);
    fam.help = "help " + random_name(rng, 40);
    fam.type = rng() % 2 ? platform::MetricType::counter : platform::MetricType::gauge;
    fam.scale = {static_cast<std::uint32_t>(1 + rng() % 1024),
                 static_cast<std::int8_t>(static_cast<int>(rng() % 37) - 18)};
    fam.unit = rng() % 2 ? "W" : "";
    c.families.push_back(std::move(fam));
  }
  for (std::size_t s = 0; s < series && families > 0; ++s) {
    platform::Labels labels;
    std::size_t n = rng() % 4;
    for (std::size_t l = 0; l < n; ++l) {
      labels.emplace_back("l" + std::to_string(l) + random_name(rng, 8), random_name(rng, 16));
    }
    c.add_series(static_cast<std::uint32_t>(rng() % families), std::move(labels));
  }
  return c;
}

inline platform::Value extreme_value(std::mt19937_64& rng) {
  switch (rng() % 6) {
    case 0: return platform::Value::of_signed(std::numeric_limits<std::int64_t>::min());
    case 1: return platform::Value::of_signed(std::numeric_limits<std::int64_t>::max());
    case 2: return platform::Value::of_unsigned(std::numeric_limits<std::uint64_t>::max());
    case 3: return platform::Value::of_unsigned((1ull << 63) + rng() % 1000);
    case 4: return platform::Value::of_signed(-static_cast<std::int64_t>(rng() % 100000));
    default: return platform::Value::of_unsigned(0);
  }
}

// Advances `values` by one sampling round: counters grow by a jittery rate, gauges wander a
// little, most values do not change, some go missing, and `extreme_rate` of them jump to the
// 64-bit extremes.
inline void evolve(std::mt19937_64& rng, const platform::Catalog& c,
                   std::vector<protocol::Slot>& values, double absent_rate = 0.02,
                   double extreme_rate = 0.0) {
  std::uniform_real_distribution<double> u(0, 1);
  if (values.size() != c.series.size()) {
    values.assign(c.series.size(), {});
    for (auto& v : values) {
      v = {platform::Value::of_unsigned(rng() % 1'000'000'000), true};
    }
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    auto& v = values[i];
    v.present = u(rng) >= absent_rate;
    if (u(rng) < extreme_rate) {
      v.value = extreme_value(rng);
      continue;
    }
    if (c.family_of(static_cast<std::uint32_t>(i)).type == platform::MetricType::counter) {
      v.value.bits += (i % 3 == 0) ? 0 : 100 + rng() % 8;
    } else if (u(rng) < 0.2) {
      v.value.bits += rng() % 2 ? 1000 : -1000ull;
    }
  }
}

}  // namespace gridnode::testing
