#include "gridnode/agent/control_client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gridnode::agent {

using platform::fail;

platform::Result<nlohmann::json> control_request(const std::string& socket_path,
                                                 const nlohmann::json& request,
                                                 std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return fail(std::errc::filename_too_long, socket_path + ": socket path too long");
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return platform::fail_errno(errno, "socket");
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return platform::fail_errno(err, "cannot reach gridnoded at " + socket_path +
                                           " (is the agent running?)");
    }
    if (err == EACCES) {
      return platform::fail_errno(err, "not allowed to use " + socket_path +
                                           " (root and the agent's group only)");
    }
    return platform::fail_errno(err, "cannot connect to " + socket_path);
  }
  std::string line = request.dump() + "\n";
  std::size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      break;  // the agent hung up, maybe after a refusal: read what it said first
    }
    if (n < 0) {
      return platform::fail_errno(errno, "sending to gridnoded");
    }
    off += static_cast<std::size_t>(n);
  }
  std::string answer;
  char buf[16384];
  constexpr std::size_t kMaxAnswer = 64u << 20;
  while (answer.find('\n') == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return fail(std::errc::timed_out, "gridnoded did not answer");
      }
      return platform::fail_errno(errno, "reading from gridnoded");
    }
    if (n == 0) {
      return fail(std::errc::connection_reset, "gridnoded closed the connection without answering");
    }
    answer.append(buf, static_cast<std::size_t>(n));
    if (answer.size() > kMaxAnswer) {
      return fail(std::errc::message_size, "answer from gridnoded too large");
    }
  }
  answer.resize(answer.find('\n'));
  nlohmann::json j = nlohmann::json::parse(answer, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail(std::errc::bad_message, "gridnoded sent something that is not a JSON object");
  }
  return j;
}

}  // namespace gridnode::agent
