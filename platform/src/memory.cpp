#include "gridnode/platform/memory.hpp"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gridnode::platform {
namespace {

struct Mapping {
  unsigned long start = 0, end = 0;
  bool candidate = false;  // private, not writable, file-backed
  bool anonymous = false;  // any Anonymous page
};

void drop(const Mapping& m, Released& r) {
  if (!m.candidate || m.anonymous || m.end <= m.start) {
    return;
  }
  if (::madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED) == 0) {
    r.code += m.end - m.start;
  }
}

}  // namespace

Released release_startup_memory() {
  Released r;
  r.heap_trimmed = ::malloc_trim(0) != 0;
  // stdio, not the project's readers: a line at a time, no allocation that outlives the call.
  std::FILE* f = std::fopen("/proc/self/smaps", "re");
  if (f == nullptr) {
    return r;
  }
  char line[512];
  Mapping m;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long start = 0, end = 0;
    char perms[8] = {};
    unsigned long long offset = 0;
    char dev[16] = {};
    unsigned long inode = 0;
    int path_at = 0;
    if (std::sscanf(line, "%lx-%lx %7s %llx %15s %lu %n", &start, &end, perms, &offset, dev,
                    &inode, &path_at) >= 6 &&
        std::strchr(line, ':') != nullptr && line[0] != ' ' &&
        std::strncmp(line, "Anonymous:", 10) != 0) {
      drop(m, r);
      m = Mapping{start, end,
                  perms[1] == '-' && perms[3] == 'p' && inode != 0 && line[path_at] == '/',
                  false};
      continue;
    }
    if (std::strncmp(line, "Anonymous:", 10) == 0) {
      m.anonymous = std::strtoul(line + 10, nullptr, 10) != 0;
    }
  }
  drop(m, r);
  std::fclose(f);
  return r;
}

}  // namespace gridnode::platform
