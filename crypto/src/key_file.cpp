#include <fcntl.h>
#include <mbedtls/platform_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "gridnode/crypto/keys.hpp"
#include "gridnode/platform/fd.hpp"
#include "gridnode/platform/files.hpp"

namespace gridnode::crypto {
namespace {

constexpr std::size_t kMaxKeyFile = 64 * 1024;

// Wipes the buffer that held the key's text however the function leaves.
struct WipeOnExit {
  std::string& s;
  ~WipeOnExit() { wipe(s); }
};

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

void wipe(std::string& secret) { mbedtls_platform_zeroize(secret.data(), secret.size()); }

platform::Result<void> write_private_key_file(const std::string& path, const PrivateKey& key,
                                              bool overwrite) {
  auto pem = key.to_pem();
  if (!pem) {
    return tl::unexpected(pem.error());
  }
  WipeOnExit wipe{*pem};
  // 0600 is applied with fchmod, so the umask can neither widen nor narrow it.
  auto written = overwrite ? platform::write_file_atomic(path, *pem, 0600)
                           : platform::create_file_atomic(path, *pem, 0600);
  if (!written && written.error().code == std::errc::file_exists) {
    return platform::fail(std::errc::file_exists,
                          "node key " + path + " already exists: refusing to overwrite it");
  }
  return written;
}

platform::Result<PrivateKey> load_private_key_file(const std::string& path) {
  // open(2) follows a symlink; fstat(2) on the descriptor then judges the file we actually
  // read (its mode and owner), with no window between check and use. O_NONBLOCK: a FIFO
  // planted at the path must not hang the daemon in open(2).
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    return platform::fail_errno(errno, "node key " + path);
  }
  const platform::UniqueFd file(fd);  // closed however the function leaves
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return platform::fail_errno(errno, "node key " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    return platform::fail(std::errc::invalid_argument,
                          "node key '" + path + "' is not a regular file");
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return platform::fail(std::errc::permission_denied,
                          "node key '" + path + "' is owned by uid " + std::to_string(st.st_uid) +
                              ", not by uid " + std::to_string(::geteuid()) + " (us) or root");
  }
  if ((st.st_mode & 077) != 0) {
    return platform::fail(std::errc::permission_denied,
                          "permissions " + octal_mode(st.st_mode) + " for '" + path +
                              "' are too open: the node key must be readable by its owner "
                              "only (chmod 600 '" +
                              path + "')");
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxKeyFile) {
    return platform::fail(
        std::errc::file_too_large,
        "node key '" + path + "' is " + std::to_string(st.st_size) + " bytes, not a key");
  }
  // Reserve once so the secret is never reallocated (which would leave an unwiped copy).
  std::string text;
  text.reserve(kMaxKeyFile + 1);
  WipeOnExit wipe{text};
  text.resize(kMaxKeyFile + 1);
  std::size_t used = 0;
  for (;;) {
    ssize_t n = ::read(fd, text.data() + used, text.size() - used);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return platform::fail_errno(errno, "node key " + path);
    }
    if (n == 0) {
      break;
    }
    used += static_cast<std::size_t>(n);
    if (used > kMaxKeyFile) {
      return platform::fail(std::errc::file_too_large, "node key '" + path + "' grew past 64 KiB");
    }
  }
  auto key = PrivateKey::from_pem(std::string_view(text.data(), used));
  if (!key) {
    platform::Error e = key.error();
    e.context = "node key " + path + ": " + e.context;
    return tl::unexpected(std::move(e));
  }
  return key;
}

}  // namespace gridnode::crypto
