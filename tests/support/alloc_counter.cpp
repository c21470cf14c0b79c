#include "alloc_counter.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

// g++ sees our delete (free) inlined against our new (malloc) and cannot tell they match.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::size_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace gridnode::testing {

void AllocationCounter::start() {
  g_allocations = 0;
  g_counting = true;
}

std::size_t AllocationCounter::stop() {
  g_counting = false;
  return g_allocations.load();
}

}  // namespace gridnode::testing
