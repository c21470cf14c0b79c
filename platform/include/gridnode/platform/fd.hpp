#pragma once

// One way to hold a file descriptor (a file, a socket, a directory, an inotify instance), and
// one way to write a buffer to one.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "gridnode/platform/result.hpp"

namespace gridnode::platform {

// Owns a descriptor and closes it when it goes: no descriptor is closed by hand, none leaks on
// an early return. Movable, not copyable; -1 is "none". close(2)'s own error is ignored by the
// destructor (the data is not safe after a failed close either way: sync first where it
// matters, and call close() to see it).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset(std::exchange(other.fd_, -1));
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  // Gives the descriptor up without closing it.
  int release() { return std::exchange(fd_, -1); }
  // Closes the descriptor held (if any) and holds `fd` instead.
  void reset(int fd = -1);
  // Closes it now and says whether close(2) succeeded (a deferred write error shows here).
  [[nodiscard]] Result<void> close();

 private:
  int fd_ = -1;
};

// Writes all of `data` to `fd`, through short writes and EINTR: at the file position, or with
// pwrite(2) at `offset` when one is given. Fails with the errno of the failing call ("write" or
// "pwrite" as context; callers add what they were writing), io_error when a call wrote nothing.
// After a failure part of `data` may have been written.
[[nodiscard]] Result<void> write_all(int fd, std::span<const std::uint8_t> data,
                                     std::optional<std::uint64_t> offset = std::nullopt);
[[nodiscard]] inline Result<void> write_all(int fd, std::string_view data,
                                            std::optional<std::uint64_t> offset = std::nullopt) {
  return write_all(
      fd, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()),
                                        data.size()),
      offset);
}

}  // namespace gridnode::platform
