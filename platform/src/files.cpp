#include "gridnode/platform/files.hpp"

#include "gridnode/platform/fd.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace gridnode::platform {
namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// One read(2) at offset 0. sysfs returns the whole attribute at once; a result that fills the
// buffer means the file is bigger than we allow.
Result<std::string_view> pread_once(int fd, std::span<char> buf, const std::string& path) {
  ssize_t n;
  do {
    n = ::pread(fd, buf.data(), buf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return fail_errno(errno, path);
  }
  if (static_cast<std::size_t>(n) == buf.size()) {
    return fail(std::errc::result_out_of_range, path + ": file larger than " +
                                                    std::to_string(buf.size()) + " bytes");
  }
  return std::string_view(buf.data(), static_cast<std::size_t>(n));
}

// O_NONBLOCK: a FIFO planted in a tree must not stall a sweep in open(2); regular and sysfs
// files ignore the flag.
int open_ro(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

template <class T>
Result<T> parse_integer(std::string_view text) {
  std::string_view t = trim(text);
  if (t.empty()) {
    return fail(std::errc::invalid_argument, "empty value");
  }
  // from_chars takes no '+', the kernel never writes one, and neither do we accept it.
  T value{};
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value, 10);
  if (ec == std::errc::result_out_of_range) {
    return fail(std::errc::result_out_of_range, "value does not fit in 64 bits");
  }
  if (ec != std::errc() || end != t.data() + t.size()) {
    return fail(std::errc::invalid_argument, "not an integer");
  }
  return value;
}

}  // namespace

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && is_space(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

Result<std::int64_t> parse_int64(std::string_view text) { return parse_integer<std::int64_t>(text); }

Result<std::uint64_t> parse_uint64(std::string_view text) {
  return parse_integer<std::uint64_t>(text);
}

Result<std::string_view> read_small_file(const std::string& path, std::span<char> buf) {
  int fd = open_ro(path);
  if (fd < 0) {
    return fail_errno(errno, path);
  }
  auto result = pread_once(fd, buf, path);
  ::close(fd);
  return result;
}

Result<void> read_file(const std::string& path, std::string& out, std::size_t limit) {
  int fd = open_ro(path);
  if (fd < 0) {
    return fail_errno(errno, path);
  }
  out.clear();
  if (out.capacity() < 4096) {
    out.reserve(4096);
  }
  for (;;) {
    if (out.size() == out.capacity()) {
      if (out.size() >= limit) {
        ::close(fd);
        return fail(std::errc::file_too_large, path);
      }
      out.reserve(std::min(limit + 1, out.capacity() * 2));
    }
    std::size_t old = out.size();
    std::size_t room = out.capacity() - old;
    out.resize(out.capacity());
    ssize_t n = ::read(fd, out.data() + old, room);
    if (n < 0 && errno == EINTR) {
      out.resize(old);
      continue;
    }
    if (n < 0) {
      int err = errno;
      out.resize(old);
      ::close(fd);
      return fail_errno(err, path);
    }
    out.resize(old + static_cast<std::size_t>(n));
    if (n == 0) {
      break;
    }
    if (out.size() > limit) {
      ::close(fd);
      return fail(std::errc::file_too_large, path);
    }
  }
  ::close(fd);
  return {};
}

KernelFile::KernelFile(KernelFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

KernelFile& KernelFile::operator=(KernelFile&& other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

KernelFile::~KernelFile() { close(); }

void KernelFile::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Result<std::string_view> KernelFile::read(std::span<char> buf, bool keep_open) {
  if (fd_ < 0) {
    fd_ = open_ro(path_);
    if (fd_ < 0) {
      return fail_errno(errno, path_);
    }
  }
  auto result = pread_once(fd_, buf, path_);
  if (!result || !keep_open) {
    close();
  }
  return result;
}

Result<std::vector<std::string>> list_dir(const std::string& path) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), &::closedir);
  if (!dir) {
    return fail_errno(errno, path);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(dir.get())) {
    std::string_view name(entry->d_name);
    if (name != "." && name != "..") {
      names.emplace_back(name);
    }
  }
  if (errno != 0) {
    return fail_errno(errno, path);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::string> resolve_path(const std::string& path) {
  std::unique_ptr<char, void (*)(void*)> resolved(::realpath(path.c_str(), nullptr), &std::free);
  if (!resolved) {
    return fail_errno(errno, path);
  }
  return std::string(resolved.get());
}

Result<std::string> read_link(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) {
    return fail_errno(errno, path);
  }
  if (static_cast<std::size_t>(n) == sizeof buf) {
    return fail(std::errc::filename_too_long, path);
  }
  return std::string(buf, static_cast<std::size_t>(n));
}

namespace {

enum class Replace { kYes, kNo };

// "dir" and "base" of a path; "." for a bare name. An empty base (trailing slash) is refused.
bool split_path(const std::string& path, std::string& dir, std::string& base) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    dir = ".";
    base = path;
  } else {
    dir = slash == 0 ? "/" : path.substr(0, slash);
    base = path.substr(slash + 1);
  }
  return !base.empty() && base != "." && base != "..";
}

// A name for the temporary file that no other writer picks: pid, a process-wide counter and
// the clock. O_EXCL settles any collision anyway; the caller retries on EEXIST.
std::string temp_name(const std::string& dir, const std::string& base) {
  static std::atomic<unsigned> counter{0};
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, ".tmp-%ld-%u-%lx", static_cast<long>(::getpid()),
                counter.fetch_add(1, std::memory_order_relaxed),
                static_cast<unsigned long>(ts.tv_nsec));
  // Keep the name within NAME_MAX (255) whatever the length of `base`.
  return dir + "/." + base.substr(0, 180) + suffix;
}

// Moves `tmp` to `path` without replacing anything: renameat2(RENAME_NOREPLACE) where the file
// system has it, else link(2) (which never replaces either) and unlink of the temporary name.
int rename_noreplace(const std::string& tmp, const std::string& path) {
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) {
    return 0;
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    return -1;
  }
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    return -1;
  }
  ::unlink(tmp.c_str());
  return 0;
}

Result<void> write_atomic(const std::string& path, std::string_view data, mode_t mode,
                          Replace replace) {
  std::string dir, base;
  if (!split_path(path, dir, base)) {
    return fail(std::errc::invalid_argument, path + ": not a file name");
  }
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = temp_name(dir, base);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && !((errno == EEXIST && attempt < 100) || errno == EINTR)) {
      return fail_errno(errno, path + ": cannot create a temporary file in " + dir);
    }
  }
  auto abandon = [&](int err, const std::string& what) {
    if (fd >= 0) {
      ::close(fd);
    }
    ::unlink(tmp.c_str());
    return fail_errno(err, path + ": " + what);
  };
  if (::fchmod(fd, mode) != 0) {
    return abandon(errno, "fchmod");
  }
  if (auto w = write_all(fd, data); !w) {
    return abandon(w.error().code.value(), "write");
  }
  if (::fsync(fd) != 0) {
    return abandon(errno, "fsync");
  }
  // close(2) can report a deferred write error (NFS): the data is not safe then.
  int closed = ::close(fd);
  fd = -1;
  if (closed != 0) {
    return abandon(errno, "close");
  }
  if (replace == Replace::kYes) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      return abandon(errno, "rename");
    }
  } else if (rename_noreplace(tmp, path) != 0) {
    int err = errno;
    if (err == EEXIST) {
      ::unlink(tmp.c_str());
      return fail(std::errc::file_exists, path + ": already exists");
    }
    return abandon(err, "rename");
  }
  // The rename lives in the directory: without this fsync a crash can bring back the old file.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return fail_errno(errno, path + ": written, but cannot open " + dir + " to sync it");
  }
  int synced = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  // Some file systems refuse fsync on a directory (EINVAL); there is nothing more to do there.
  if (synced != 0 && err != EINVAL) {
    return fail_errno(err, path + ": written, but fsync of " + dir + " failed");
  }
  return {};
}

}  // namespace

Result<void> write_file_atomic(const std::string& path, std::string_view data, mode_t mode) {
  return write_atomic(path, data, mode, Replace::kYes);
}

Result<void> create_file_atomic(const std::string& path, std::string_view data, mode_t mode) {
  return write_atomic(path, data, mode, Replace::kNo);
}

}  // namespace gridnode::platform
