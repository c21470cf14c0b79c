#include "gridnode/platform/notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>

namespace gridnode::platform {
namespace {

// A positive decimal number, as systemd writes WATCHDOG_USEC and WATCHDOG_PID; nullopt else.
std::optional<std::uint64_t> parse_env_number(const char* text) {
  if (text == nullptr || *text == '\0') {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  const char* end = text + std::strlen(text);
  auto [p, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || p != end || value == 0) {
    return std::nullopt;
  }
  return value;
}

std::string one_line(std::string_view text) {
  std::string out(text);
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

}  // namespace

ServiceNotifier::ServiceNotifier(std::string socket, std::chrono::microseconds watchdog)
    : socket_(std::move(socket)),
      watchdog_(socket_.empty() ? std::chrono::microseconds(0) : watchdog) {}

ServiceNotifier ServiceNotifier::from_environment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  std::chrono::microseconds watchdog{0};
  if (auto usec = parse_env_number(std::getenv("WATCHDOG_USEC"))) {
    // The watchdog belongs to the process systemd named, when it named one: a child that
    // inherited the environment must not keep a wedged parent alive.
    auto pid = parse_env_number(std::getenv("WATCHDOG_PID"));
    if (!std::getenv("WATCHDOG_PID") || (pid && *pid == static_cast<std::uint64_t>(::getpid()))) {
      watchdog = std::chrono::microseconds(*usec);
    }
  }
  return ServiceNotifier(socket ? socket : "", watchdog);
}

Result<void> ServiceNotifier::notify(std::string_view state) const {
  if (socket_.empty()) {
    return {};
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof addr.sun_path) {
    return fail(std::errc::invalid_argument, "NOTIFY_SOCKET " + socket_ + ": path too long");
  }
  if (socket_[0] != '/' && socket_[0] != '@') {
    // systemd 254 also knows vsock: addresses, for virtual machines; we run on hosts.
    return fail(std::errc::invalid_argument,
                "NOTIFY_SOCKET " + socket_ + ": neither an absolute path nor @abstract");
  }
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
  if (socket_[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract: the name is the bytes after the NUL, no terminator
  } else {
    len += 1;  // the path's terminating NUL, as sd_notify sends it
  }
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return fail_errno(errno, "NOTIFY_SOCKET: socket");
  }
  // A socket per message, as sd_notify does: messages are rare (start, reload, stop and one
  // watchdog ping every few seconds), and nothing stays open that a reload could leave stale.
  ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                          reinterpret_cast<const sockaddr*>(&addr), len);
  int err = errno;
  ::close(fd);
  if (sent < 0) {
    return fail_errno(err, "NOTIFY_SOCKET " + socket_);
  }
  if (static_cast<std::size_t>(sent) != state.size()) {
    return fail(std::errc::message_size, "NOTIFY_SOCKET " + socket_ + ": datagram cut short");
  }
  return {};
}

Result<void> ServiceNotifier::ready(std::string_view status) const {
  return notify("READY=1\nSTATUS=" + one_line(status));
}

Result<void> ServiceNotifier::status(std::string_view status) const {
  return notify("STATUS=" + one_line(status));
}

Result<void> ServiceNotifier::reloading() const {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000u +
                    static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
  return notify("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=" +
                std::to_string(usec));
}

Result<void> ServiceNotifier::stopping() const { return notify("STOPPING=1\nSTATUS=stopping"); }

Result<void> ServiceNotifier::watchdog() const { return notify("WATCHDOG=1"); }

}  // namespace gridnode::platform
