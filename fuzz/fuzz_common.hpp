#pragma once

// Shared by the fuzz targets and the seed maker: the fixed catalog that report messages are
// decoded against (a message names its catalog by digest, so the fuzzer needs one at hand).

#include <random>

#include "gridnode/protocol/catalog.hpp"
#include "report_fixtures.hpp"

namespace gridnode::fuzz {

inline const protocol::EncodedCatalog& fixed_catalog() {
  static const protocol::EncodedCatalog catalog = [] {
    std::mt19937_64 rng(1);
    return protocol::EncodedCatalog::of(testing::random_catalog(rng, 8, 64));
  }();
  return catalog;
}

[[noreturn]] inline void property_failed(const char* what) {
  // A property, not a crash in our code: abort so that the fuzzer keeps the input.
  __builtin_printf("property violated: %s\n", what);
  __builtin_trap();
}

}  // namespace gridnode::fuzz
