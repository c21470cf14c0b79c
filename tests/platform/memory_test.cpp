#include "gridnode/platform/memory.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace gridnode::platform {
namespace {

// Rss of this process's read-only, file-backed code mappings, from /proc/self/smaps.
long code_rss_kib() {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool code = false;
  long total = 0;
  while (std::getline(in, line)) {
    unsigned long a = 0, b = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &a, &b, perms) == 3) {
      code = std::string(perms) == "r-xp" && line.find('/') != std::string::npos;
    } else if (code && line.rfind("Rss:", 0) == 0) {
      total += std::strtol(line.c_str() + 4, nullptr, 10);
    }
  }
  return total;
}

// What it unmaps comes back when it runs: the process goes on, its relocated data intact (a
// RELRO page dropped would put the file's bytes back and crash the next virtual call).
TEST(Memory, ReleaseUnmapsCodeAndTheProcessGoesOn) {
  std::vector<std::string> before(1000, std::string(100, 'x'));
  before.clear();
  before.shrink_to_fit();
  const long rss_before = code_rss_kib();
  const Released r = release_startup_memory();
  const long rss_after = code_rss_kib();
  EXPECT_GT(r.code, 0u);
  // Under qemu-user (the arm64 build's tests, GRIDNODE_EMULATOR set) the guest's code is the
  // emulator's mapping and its translation cache: dropping the pages changes no Rss it reports.
  // What follows, that the process goes on, holds there too.
  if (std::getenv("GRIDNODE_EMULATOR") == nullptr) {
    EXPECT_LT(rss_after, rss_before);
  }
  // Virtual calls, iostreams, exceptions: RELRO and the code refault as they are needed.
  std::ostringstream s;
  s << "still " << 42;
  EXPECT_EQ(s.str(), "still 42");
  EXPECT_THROW(throw std::runtime_error("unwinds"), std::runtime_error);
  EXPECT_GT(release_startup_memory().code, 0u);  // again, later: the same
}

}  // namespace
}  // namespace gridnode::platform
