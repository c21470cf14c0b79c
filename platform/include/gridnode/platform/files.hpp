#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/platform/result.hpp"

namespace gridnode::platform {

// Reads a small kernel file (sysfs attribute, procfs line) with one read(2) into `buf` and
// returns the bytes read, trailing newline included. One raw read, not a buffered stream:
// some hwmon drivers answer EAGAIN or EIO to a second read, and sysfs hands out a whole
// attribute in one go. A file longer than `buf` is an error (result_out_of_range), not a
// silent truncation. Errors carry `path` as context.
[[nodiscard]] Result<std::string_view> read_small_file(const std::string& path,
                                                       std::span<char> buf);

// Reads a whole file of unknown size (procfs tables such as /proc/diskstats), reusing `out`'s
// capacity. Refuses files above `limit` bytes.
[[nodiscard]] Result<void> read_file(const std::string& path, std::string& out,
                                     std::size_t limit = 1 << 20);

// A kernel file kept open between sweeps and re-read with pread(fd, 0): sysfs and seq_file
// procfs files regenerate their content on every read at offset 0, so a sweep costs one
// system call per reading instead of open+read+close. Movable, not copyable.
class KernelFile {
 public:
  KernelFile() = default;
  explicit KernelFile(std::string path) : path_(std::move(path)) {}
  KernelFile(KernelFile&& other) noexcept;
  KernelFile& operator=(KernelFile&& other) noexcept;
  KernelFile(const KernelFile&) = delete;
  KernelFile& operator=(const KernelFile&) = delete;
  ~KernelFile();

  const std::string& path() const { return path_; }

  // Opens the file on first use (and again after an error), then reads it from offset 0 into
  // `buf`. On any error the descriptor is closed so that the next call starts afresh, e.g.
  // after a chip re-appears. `keep_open` false closes the file after reading (for hosts with
  // more readings than we may keep descriptors).
  [[nodiscard]] Result<std::string_view> read(std::span<char> buf, bool keep_open = true);

  void close();

 private:
  std::string path_;
  int fd_ = -1;
};

// Integer parsing for kernel text: no locale, no exceptions. Leading/trailing ASCII whitespace
// (the kernel's "\n") is ignored; anything else, an empty string, or a value that does not fit
// gives invalid_argument / result_out_of_range.
[[nodiscard]] Result<std::int64_t> parse_int64(std::string_view text);
[[nodiscard]] Result<std::uint64_t> parse_uint64(std::string_view text);

// Strips ASCII whitespace from both ends.
std::string_view trim(std::string_view text);

// The names in a directory (no "." or ".."), sorted. `no_such_file_or_directory` when absent.
[[nodiscard]] Result<std::vector<std::string>> list_dir(const std::string& path);

// realpath(3) of `path`, or the error. Used to follow sysfs's class → device symlinks.
[[nodiscard]] Result<std::string> resolve_path(const std::string& path);

// The target of a symlink as written (readlink(2)).
[[nodiscard]] Result<std::string> read_link(const std::string& path);

// Replaces `path` with `data` atomically: readers see the old file or the new one, never a
// part, also across a crash. A temporary file is created beside `path` (same directory, so
// rename(2) cannot cross a file system) with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, set to
// `mode` with fchmod (so the umask neither widens nor narrows it), written, fsync'ed, renamed
// over `path`, and the directory is fsync'ed so the rename itself is durable. A symlink at
// `path` is replaced, not followed. On failure the temporary file is removed and `path` is
// untouched. Errors name the path.
[[nodiscard]] Result<void> write_file_atomic(const std::string& path, std::string_view data,
                                             mode_t mode);

// As write_file_atomic, but never replaces: fails with file_exists when `path` exists (also a
// dangling symlink), decided atomically by the kernel (renameat2 RENAME_NOREPLACE, or link(2)
// where the file system lacks it).
[[nodiscard]] Result<void> create_file_atomic(const std::string& path, std::string_view data,
                                              mode_t mode);

}  // namespace gridnode::platform
