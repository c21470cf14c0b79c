// The control socket's answers that come later (a reload waits for files read on a worker):
// the idle timeout does not cut them off, a connection's answers keep their order, and an
// answer after stop() goes nowhere.
#include "gridnode/agent/control_server.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include "gridnode/agent/control_client.hpp"
#include "temp_dir.hpp"

namespace gridnode::agent {
namespace {

using namespace std::chrono_literals;
using gridnode::testing::TempDir;
using nlohmann::json;

template <class Pred>
bool run_until(asio::io_context& io, Pred pred, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) {
      return false;
    }
    io.restart();
    if (io.run_for(5ms) == 0) {
      std::this_thread::sleep_for(1ms);
    }
  }
  return true;
}

// A blocking client on its own thread while the test's thread runs the server's loop.
class Client {
 public:
  Client(std::string path, json request)
      : thread_([this, path = std::move(path), request = std::move(request)] {
          answer_ = control_request(path, request, 5s);
          done_ = true;
        }) {}
  ~Client() { thread_.join(); }
  bool done() const { return done_; }
  const platform::Result<json>& answer() const { return *answer_; }

 private:
  std::optional<platform::Result<json>> answer_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

TEST(ControlServer, AnswerThatTakesLongerThanTheIdleTimeoutStillArrives) {
  TempDir dir;
  asio::io_context io{1};
  asio::steady_timer work(io);
  ControlServer::Options o;
  o.path = dir / "c.sock";
  o.idle_timeout = 100ms;
  ControlServer server(io, o, [&](const json& req, const platform::PeerCredentials&,
                                  ControlServer::Reply reply) {
    work.expires_after(400ms);  // four idle timeouts
    work.async_wait([reply = std::move(reply), req](const std::error_code&) {
      reply({{"ok", true}, {"echo", req["cmd"]}});
    });
  });
  ASSERT_TRUE(server.start());
  Client client(o.path, {{"cmd", "slow"}});
  ASSERT_TRUE(run_until(io, [&] { return client.done(); }));
  ASSERT_TRUE(client.answer()) << client.answer().error().message();
  EXPECT_EQ((*client.answer())["echo"], "slow");
  server.stop();
}

TEST(ControlServer, SilentClientIsStillClosedAfterTheIdleTimeout) {
  TempDir dir;
  asio::io_context io{1};
  ControlServer::Options o;
  o.path = dir / "c.sock";
  o.idle_timeout = 100ms;
  ControlServer server(io, o, [](const json&, const platform::PeerCredentials&,
                                 ControlServer::Reply reply) { reply({{"ok", true}}); });
  ASSERT_TRUE(server.start());
  std::atomic<int> got{-2};
  std::thread silent([&] {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", o.path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char c;
      got = static_cast<int>(::recv(fd, &c, 1, 0));  // 0: the server closed it
    }
    ::close(fd);
  });
  ASSERT_TRUE(run_until(io, [&] { return got.load() != -2; }));
  silent.join();
  EXPECT_EQ(got.load(), 0);
  server.stop();
}

// The one-line refusal names every group let in: the socket's, and those the policy grants.
TEST(ControlServer, RefusalNamesEveryGroupLetIn) {
  TempDir dir;
  asio::io_context io{1};
  ControlServer::Options o;
  o.path = dir / "c.sock";
  o.group = 4242;
  o.group_name = "gridnode";
  ControlServer server(io, o, [](const json&, const platform::PeerCredentials&,
                                 ControlServer::Reply reply) { reply({{"ok", true}}); });
  platform::PeerCredentials stranger;
  stranger.uid = 65534;
  stranger.gid = 65534;
  ASSERT_NE(stranger.uid, ::geteuid());
  auto why = server.refusal(stranger);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "permission denied: user " + platform::user_name(65534) +
                      " is not root and not in group gridnode");

  server.set_extra_groups({4243, 4242}, {"ops", "gridnode"});
  why = server.refusal(stranger);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "permission denied: user " + platform::user_name(65534) +
                      " is not root and not in group gridnode nor in ops");

  stranger.groups = {4243};
  EXPECT_FALSE(server.refusal(stranger));  // a member of a group the policy lets in
}

TEST(ControlServer, AnswerAfterStopIsDropped) {
  TempDir dir;
  asio::io_context io{1};
  ControlServer::Options o;
  o.path = dir / "c.sock";
  std::optional<ControlServer::Reply> pending;
  ControlServer server(io, o, [&](const json&, const platform::PeerCredentials&,
                                  ControlServer::Reply reply) { pending = std::move(reply); });
  ASSERT_TRUE(server.start());
  Client client(o.path, {{"cmd", "reload"}});
  ASSERT_TRUE(run_until(io, [&] { return pending.has_value(); }));
  server.stop();  // the agent stops while the answer is being worked on
  (*pending)({{"ok", true}});
  ASSERT_TRUE(run_until(io, [&] { return client.done(); }));
  ASSERT_FALSE(client.answer());
  EXPECT_NE(client.answer().error().message().find("closed the connection without answering"),
            std::string::npos)
      << client.answer().error().message();
}

}  // namespace
}  // namespace gridnode::agent
