#include "gridnode/platform/fd.hpp"

#include <unistd.h>

#include <cerrno>

namespace gridnode::platform {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0 && fd_ != fd) {
    ::close(fd_);
  }
  fd_ = fd;
}

Result<void> UniqueFd::close() {
  if (fd_ < 0) {
    return {};
  }
  // Linux releases the descriptor even when close(2) fails (EINTR included): never retry.
  if (::close(std::exchange(fd_, -1)) != 0) {
    return fail_errno(errno, "close");
  }
  return {};
}

Result<void> write_all(int fd, std::span<const std::uint8_t> data,
                       std::optional<std::uint64_t> offset) {
  const char* what = offset ? "pwrite" : "write";
  while (!data.empty()) {
    ssize_t n = offset ? ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(*offset))
                       : ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return fail_errno(errno, what);
    }
    if (n == 0) {
      return fail(std::errc::io_error, std::string(what) + " wrote nothing");
    }
    data = data.subspan(static_cast<std::size_t>(n));
    if (offset) {
      *offset += static_cast<std::uint64_t>(n);
    }
  }
  return {};
}

}  // namespace gridnode::platform
