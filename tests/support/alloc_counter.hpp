#pragma once

#include <cstddef>

namespace gridnode::testing {

// Counts heap allocations (global operator new) made between start() and stop(), to prove that
// a steady-state sweep allocates nothing. Linking this replaces the program's operator new with
// a counting malloc-based one; only test programs use it.
class AllocationCounter {
 public:
  void start();
  // Returns how many allocations happened since start().
  std::size_t stop();
};

}  // namespace gridnode::testing
