#include "sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace gridnode::collector {

platform::Result<std::unique_ptr<JsonlSink>> JsonlSink::open(const std::string& path,
                                                             const Replay& replay) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_APPEND, 0640);
  if (fd < 0) {
    return platform::fail_errno(errno, "cannot open sink " + path);
  }
  // Read it through in blocks; hand each whole line to `replay`; remember where the last
  // newline is: anything after it is a record cut short by a crash.
  std::vector<char> block(1 << 20);
  std::string carry;
  off_t offset = 0;
  off_t good_end = 0;
  for (;;) {
    ssize_t n = ::pread(fd, block.data(), block.size(), offset);
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return platform::fail_errno(err, "cannot read sink " + path);
    }
    if (n == 0) {
      break;
    }
    std::string_view chunk(block.data(), static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl = chunk.find('\n'); nl != std::string_view::npos;
         nl = chunk.find('\n', start)) {
      if (!carry.empty()) {
        carry.append(chunk.substr(start, nl - start));
        replay(carry);
        carry.clear();
      } else {
        replay(chunk.substr(start, nl - start));
      }
      start = nl + 1;
      good_end = offset + static_cast<off_t>(start);
    }
    carry.append(chunk.substr(start));
    offset += n;
  }
  std::size_t cut = static_cast<std::size_t>(offset - good_end);
  if (cut > 0 && (::ftruncate(fd, good_end) != 0 || ::fdatasync(fd) != 0)) {
    int err = errno;
    ::close(fd);
    return platform::fail_errno(err, "cannot cut the torn tail of sink " + path);
  }
  return std::unique_ptr<JsonlSink>(new JsonlSink(path, fd, cut, good_end));
}

JsonlSink::~JsonlSink() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

platform::Result<void> JsonlSink::append(std::string_view lines) {
  const std::size_t total = lines.size();
  while (!lines.empty()) {
    ssize_t n = ::write(fd_, lines.data(), lines.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int err = errno;
      // A partial append (disk full) must not leave half a line for the next one to follow.
      (void)::ftruncate(fd_, size_);
      return platform::fail_errno(err, "cannot write sink " + path_);
    }
    lines.remove_prefix(static_cast<std::size_t>(n));
  }
  size_ += static_cast<off_t>(total);
  return {};
}

platform::Result<void> JsonlSink::sync() {
  if (::fdatasync(fd_) != 0) {
    return platform::fail_errno(errno, "cannot sync sink " + path_);
  }
  return {};
}

}  // namespace gridnode::collector
