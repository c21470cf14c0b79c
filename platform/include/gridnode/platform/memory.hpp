#pragma once

#include <cstddef>

namespace gridnode::platform {

// What release_startup_memory() gave back, in bytes.
struct Released {
  std::size_t code = 0;  // clean file-backed pages unmapped (they stay in the page cache)
  bool heap_trimmed = false;
};

// Once start-up is over (the daemon's first round): gives back what start-up alone touched and
// the process would otherwise keep resident for its whole life. The free pages of the heap go
// back to the kernel (malloc_trim), and every clean, read-only, file-backed mapping (the
// program's and its libraries' code and read-only data: option parsing, configuration
// reading, the loader's relocation work) is unmapped from this process with MADV_DONTNEED.
// Those pages stay in the page cache; what runs again faults back in from there (a minor fault,
// no I/O). A mapping holding any anonymous (copy-on-write) page — the RELRO data after
// relocation — is left alone: MADV_DONTNEED would put the file's bytes back. Reads
// /proc/self/smaps; without it, only the heap is trimmed.
Released release_startup_memory();

}  // namespace gridnode::platform
