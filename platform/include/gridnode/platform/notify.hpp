#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "gridnode/platform/result.hpp"

namespace gridnode::platform {

// systemd's service notification protocol (sd_notify(3)) without libsystemd: one datagram of
// "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET. A path starting with '@' is
// an abstract socket. The protocol is one-way and best effort: systemd reads the datagram or
// not, and nothing waits for an answer.
//
// A notifier built without a socket is disabled: every call succeeds and sends nothing, so the
// daemon makes the same calls whether systemd started it or a technician did.
class ServiceNotifier {
 public:
  ServiceNotifier() = default;  // disabled
  // `socket`: a filesystem path, or "@name" for an abstract socket; empty: disabled.
  // `watchdog`: how often systemd wants WATCHDOG=1 at the latest; zero: no watchdog.
  ServiceNotifier(std::string socket, std::chrono::microseconds watchdog);

  // From $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID (the watchdog is ours only when
  // WATCHDOG_PID is unset or names this process, as sd_watchdog_enabled(3) says). A malformed
  // WATCHDOG_USEC means no watchdog. Reads the environment; call once, from main's thread.
  static ServiceNotifier from_environment();

  bool enabled() const { return !socket_.empty(); }
  const std::string& socket() const { return socket_; }
  // Zero when systemd set no watchdog. Send WATCHDOG=1 at about half this interval.
  std::chrono::microseconds watchdog_interval() const { return watchdog_; }

  // Sends `state` ("READY=1\nSTATUS=sampling 312 metrics") as one datagram. Errors: the socket
  // path is too long or not absolute (invalid_argument), or the system call's errno (a socket
  // nobody listens on is connection_refused or no_such_file_or_directory). Thread-safe.
  [[nodiscard]] Result<void> notify(std::string_view state) const;

  // The messages the daemons send, spelled once. `status` is a line for humans; newlines in it
  // are replaced, since each line of the datagram is one assignment.
  [[nodiscard]] Result<void> ready(std::string_view status) const;
  [[nodiscard]] Result<void> status(std::string_view status) const;
  // RELOADING=1 with MONOTONIC_USEC (systemd 253's Type=notify-reload wants the time stamp;
  // older versions ignore it). Send ready() when the reload is over, whatever its outcome.
  [[nodiscard]] Result<void> reloading() const;
  [[nodiscard]] Result<void> stopping() const;
  [[nodiscard]] Result<void> watchdog() const;

 private:
  std::string socket_;
  std::chrono::microseconds watchdog_{0};
};

}  // namespace gridnode::platform
