#pragma once

#include <sys/timex.h>

#include <array>

#include "gridnode/drivers/driver.hpp"

namespace gridnode::drivers::timex {

inline constexpr std::size_t kFamilies = 17;

// The families, in the order of values() (node_exporter 1.5.0's names and HELP texts).
const std::array<Family, kFamilies>& families();

// What adjtimex(2) returned (`state`, the clock state: TIME_OK … TIME_ERROR) and filled in,
// as the values of families(), exactly where node_exporter divides by a power of ten or two.
std::array<Value, kFamilies> values(int state, const struct ::timex& tx);

}  // namespace gridnode::drivers::timex
