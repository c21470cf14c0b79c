#include "gridnode/platform/notify.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "temp_dir.hpp"

namespace gridnode::platform {
namespace {

using gridnode::testing::TempDir;
using namespace std::chrono_literals;

// What systemd does: a datagram socket bound at NOTIFY_SOCKET, read one message at a time.
class Listener {
 public:
  // `path` starting with '@': abstract.
  explicit Listener(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    if (path[0] == '@') {
      addr.sun_path[0] = '\0';
    }
    bound_ = ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) == 0;
  }
  ~Listener() { ::close(fd_); }
  bool bound() const { return bound_; }

  // The next datagram, or nullopt when none arrives within a second.
  std::optional<std::string> receive() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) {
      return std::nullopt;
    }
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      return std::nullopt;
    }
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
};

TEST(ServiceNotifier, SendsEachMessageAsOneDatagram) {
  TempDir dir;
  Listener listener(dir / "notify");
  ASSERT_TRUE(listener.bound());
  ServiceNotifier n(dir / "notify", 0us);
  ASSERT_TRUE(n.enabled());

  ASSERT_TRUE(n.ready("sampling 12 metrics\nuplink not configured").has_value());
  EXPECT_EQ(listener.receive(), "READY=1\nSTATUS=sampling 12 metrics uplink not configured");
  ASSERT_TRUE(n.status("spool 0 B").has_value());
  EXPECT_EQ(listener.receive(), "STATUS=spool 0 B");
  ASSERT_TRUE(n.reloading().has_value());
  auto reloading = listener.receive();
  ASSERT_TRUE(reloading);
  EXPECT_EQ(reloading->rfind("RELOADING=1\n", 0), 0u) << *reloading;
  EXPECT_NE(reloading->find("\nMONOTONIC_USEC="), std::string::npos) << *reloading;
  ASSERT_TRUE(n.watchdog().has_value());
  EXPECT_EQ(listener.receive(), "WATCHDOG=1");
  ASSERT_TRUE(n.stopping().has_value());
  EXPECT_EQ(listener.receive(), "STOPPING=1\nSTATUS=stopping");
}

TEST(ServiceNotifier, ReachesAnAbstractSocket) {
  const std::string name = "@gridnode-notify-test-" + std::to_string(::getpid());
  Listener listener(name);
  ASSERT_TRUE(listener.bound());
  ServiceNotifier n(name, 0us);
  ASSERT_TRUE(n.notify("READY=1").has_value());
  EXPECT_EQ(listener.receive(), "READY=1");
}

TEST(ServiceNotifier, DisabledSendsNothingAndSucceeds) {
  ServiceNotifier n;
  EXPECT_FALSE(n.enabled());
  EXPECT_TRUE(n.ready("x").has_value());
  EXPECT_EQ(n.watchdog_interval(), 0us);
  ServiceNotifier no_socket("", 5s);
  EXPECT_EQ(no_socket.watchdog_interval(), 0us);  // a watchdog nobody could be told about
}

TEST(ServiceNotifier, ReportsAbsentListenerAndBadPaths) {
  TempDir dir;
  auto absent = ServiceNotifier(dir / "nobody", 0us).notify("READY=1");
  ASSERT_FALSE(absent.has_value());
  EXPECT_EQ(absent.error().code, std::errc::no_such_file_or_directory);
  auto relative = ServiceNotifier("relative/path", 0us).notify("READY=1");
  ASSERT_FALSE(relative.has_value());
  EXPECT_EQ(relative.error().code, std::errc::invalid_argument);
  auto too_long = ServiceNotifier("/" + std::string(200, 'x'), 0us).notify("READY=1");
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error().code, std::errc::invalid_argument);
}

// Each TEST runs in its own process (gtest_discover_tests), so the environment is ours.
TEST(ServiceNotifier, ReadsWatchdogFromTheEnvironment) {
  ::setenv("NOTIFY_SOCKET", "@x", 1);
  ::setenv("WATCHDOG_USEC", "3000000", 1);
  ::unsetenv("WATCHDOG_PID");
  EXPECT_EQ(ServiceNotifier::from_environment().watchdog_interval(), 3s);
  EXPECT_EQ(ServiceNotifier::from_environment().socket(), "@x");

  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  EXPECT_EQ(ServiceNotifier::from_environment().watchdog_interval(), 3s);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  EXPECT_EQ(ServiceNotifier::from_environment().watchdog_interval(), 0us) << "another process's";
  ::unsetenv("WATCHDOG_PID");
  ::setenv("WATCHDOG_USEC", "3s", 1);
  EXPECT_EQ(ServiceNotifier::from_environment().watchdog_interval(), 0us) << "malformed";

  ::unsetenv("NOTIFY_SOCKET");
  ::setenv("WATCHDOG_USEC", "3000000", 1);
  EXPECT_FALSE(ServiceNotifier::from_environment().enabled());
  ::unsetenv("WATCHDOG_USEC");
}

}  // namespace
}  // namespace gridnode::platform
