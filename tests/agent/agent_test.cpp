// The daemon's reload as systemd's ExecReload= asks for it: `{"cmd":"reload"}` on the real control
// socket, answered once agent.toml and the policy file are read, with the notify protocol's
// RELOADING=1 … READY=1 around it, and who may ask.
#include "gridnode/agent/agent.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gridnode/agent/control_client.hpp"
#include "temp_dir.hpp"

namespace gridnode::agent {
namespace {

using namespace std::chrono_literals;
using gridnode::testing::fixture_path;
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

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// systemd's end of sd_notify: a datagram socket the agent's ServiceNotifier sends to.
class NotifyListener {
 public:
  explicit NotifyListener(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~NotifyListener() { ::close(fd_); }
  bool bound() const { return bound_; }
  // Every datagram received so far, in order.
  const std::vector<std::string>& messages() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) {
        break;
      }
      messages_.emplace_back(buf, static_cast<std::size_t>(n));
    }
    return messages_;
  }
  // The first message at or after `from` that starts with `prefix`, or -1.
  int find(const std::string& prefix, std::size_t from = 0) {
    const auto& m = messages();
    for (std::size_t i = from; i < m.size(); ++i) {
      if (m[i].starts_with(prefix)) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> messages_;
};

class AgentReload : public ::testing::Test {
 protected:
  AgentReload() : notify_(dir_ / "notify.sock") {}

  // The agent on the thermal fixture, with what a unit's flags would pin (paths, drivers) set by
  // the flags function, so that a reloaded file only changes what the test writes in it.
  void start(const std::string& agent_toml) {
    write(config_path(), agent_toml);
    ASSERT_TRUE(notify_.bound());
    std::string state = dir_ / "state";
    std::string sock = socket_path();
    std::string sys = fixture_path("thermal/basic/sys");
    std::string policy = dir_ / "policy.toml";
    flags_ = [state, sock, sys, policy](Config& c) -> platform::Result<void> {
      c.state_dir = state;
      c.socket_path = sock;
      c.roots.sysfs = sys;
      c.drivers = {"thermal"};
      c.policy_file = policy;
      return {};
    };
    auto c = read_config(config_path());
    ASSERT_TRUE(c) << c.error().message();
    ASSERT_TRUE(flags_(*c));
    agent_ = std::make_unique<Agent>(io_, *c, config_path(), flags_,
                                     platform::ServiceNotifier(dir_ / "notify.sock", 0us));
    auto r = agent_->start();
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_TRUE(run_until(io_, [&] { return notify_.find("READY=1") >= 0; }));
  }

  ~AgentReload() override {
    if (agent_) {
      agent_->stop();
      io_.restart();
      io_.run_for(100ms);
    }
  }

  std::string config_path() const { return dir_ / "agent.toml"; }
  std::string socket_path() const { return dir_ / "c.sock"; }

  // One request on the real socket, from another thread (the client blocks), while this thread
  // runs the agent's loop.
  json ask(const json& request) {
    std::optional<platform::Result<json>> answer;
    std::atomic<bool> answered{false};
    std::thread client([&] {
      answer = control_request(socket_path(), request, 20s);
      answered = true;
    });
    bool done = run_until(io_, [&] { return answered.load(); }, 25s);
    client.join();
    EXPECT_TRUE(done);
    if (!answer || !*answer) {
      ADD_FAILURE() << (answer ? answer->error().message() : "no answer");
      return json::object();
    }
    return **answer;
  }

  // A request as if from `peer`, straight to the agent (the socket's own door is tested in
  // daemon_test.sh with real users).
  json ask_as(const platform::PeerCredentials& peer, const json& request) {
    std::optional<json> answer;
    agent_->answer(request, peer, [&](json a) { answer = std::move(a); });
    EXPECT_TRUE(run_until(io_, [&] { return answer.has_value(); }));
    return answer.value_or(json::object());
  }

  double interval_seconds() {
    return agent_->handle({{"cmd", "status"}}, {})["status"]["interval_seconds"].get<double>();
  }

  TempDir dir_;
  NotifyListener notify_;
  asio::io_context io_{1};
  std::function<platform::Result<void>(Config&)> flags_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentReload, GoodFileIsTakenAndTheAnswerSaysWhatWaitsForARestart) {
  start("[agent]\ninterval = 0.1\n");
  std::size_t before = notify_.messages().size();
  write(config_path(), "[agent]\ninterval = 0.5\n[node]\nrack = \"r12\"\n");
  json a = ask({{"cmd", "reload"}});
  ASSERT_TRUE(a.value("ok", false)) << a.dump();
  EXPECT_EQ(a["reloaded"]["config"], config_path());
  EXPECT_EQ(a["reloaded"]["policy"], "built-in default");  // no policy file: the default
  EXPECT_EQ(a["reloaded"]["on_restart"], json::array({"node"})) << a.dump();
  EXPECT_DOUBLE_EQ(interval_seconds(), 0.5);
  // systemd saw the reload start and end, in that order.
  int reloading = notify_.find("RELOADING=1", before);
  ASSERT_GE(reloading, 0);
  EXPECT_GT(notify_.find("READY=1", static_cast<std::size_t>(reloading)), reloading);
}

TEST_F(AgentReload, RefusedFileIsTheAnswerAndTheRunningConfigStays) {
  start("[agent]\ninterval = 0.1\n");
  std::size_t before = notify_.messages().size();
  write(config_path(), "[agent]\ninterval = 0.5\nbogus = 1\n");
  json a = ask({{"cmd", "reload"}});
  EXPECT_FALSE(a.value("ok", true)) << a.dump();
  EXPECT_NE(a.value("error", "").find("agent.toml:3: unknown key agent.bogus"), std::string::npos)
      << a.dump();
  EXPECT_DOUBLE_EQ(interval_seconds(), 0.1);
  // A refused reload still ends with READY=1: systemd must not wait for it until its timeout.
  int reloading = notify_.find("RELOADING=1", before);
  ASSERT_GE(reloading, 0);
  EXPECT_GT(notify_.find("READY=1", static_cast<std::size_t>(reloading)), reloading);
  // Fixed, the next reload goes through.
  write(config_path(), "[agent]\ninterval = 0.25\n");
  EXPECT_TRUE(ask({{"cmd", "reload"}}).value("ok", false));
  EXPECT_DOUBLE_EQ(interval_seconds(), 0.25);
}

TEST_F(AgentReload, RefusedPolicyFileFailsTheReloadAndThePolicyInForceStays) {
  write(dir_ / "policy.toml", "[policy]\nversion = 3\n");
  start("[agent]\ninterval = 0.1\n");
  ASSERT_EQ(agent_->policy().policy().version, 3u);
  write(dir_ / "policy.toml", "[policy]\nversion = 4\n[[limit]]\nname = 3\n");
  write(config_path(), "[agent]\ninterval = 0.5\n");
  json a = ask({{"cmd", "reload"}});
  EXPECT_FALSE(a.value("ok", true)) << a.dump();
  const std::string error = a.value("error", "");
  EXPECT_NE(error.find("policy rejected"), std::string::npos) << error;
  EXPECT_NE(error.find("policy.toml:4: limit.name"), std::string::npos) << error;
  EXPECT_NE(error.find(config_path() + " was applied"), std::string::npos) << error;
  EXPECT_EQ(agent_->policy().policy().version, 3u);
  EXPECT_DOUBLE_EQ(interval_seconds(), 0.5);  // agent.toml itself was good and is in force
  // A good policy file: applied, and named in the answer.
  write(dir_ / "policy.toml", "[policy]\nversion = 5\n");
  a = ask({{"cmd", "reload"}});
  ASSERT_TRUE(a.value("ok", false)) << a.dump();
  EXPECT_EQ(a["reloaded"]["policy"], dir_ / "policy.toml");
  EXPECT_EQ(agent_->policy().policy().version, 5u);
}

TEST_F(AgentReload, OnlyRootTheAgentsUserAndAGrantedGroupMayReload) {
  start("[agent]\ninterval = 0.1\n[control]\ngroup = \"4242\"\n");
  platform::PeerCredentials member;
  member.uid = 65534;
  member.gid = 65534;
  member.groups = {4242};
  // The socket's group may read, not reload.
  EXPECT_TRUE(ask_as(member, {{"cmd", "status"}}).value("ok", false));
  json a = ask_as(member, {{"cmd", "reload"}});
  EXPECT_FALSE(a.value("ok", true));
  EXPECT_NE(a.value("error", "").find("permission denied"), std::string::npos) << a.dump();
  EXPECT_NE(a.value("error", "").find("\"reload\""), std::string::npos) << a.dump();
  platform::PeerCredentials root;  // uid 0
  EXPECT_TRUE(ask_as(root, {{"cmd", "reload"}}).value("ok", false));
  platform::PeerCredentials self;
  self.uid = ::geteuid();
  self.gid = ::getegid();
  EXPECT_TRUE(ask_as(self, {{"cmd", "reload"}}).value("ok", false));
  // A policy grant names the command.
  write(dir_ / "policy.toml",
        "[policy]\nversion = 2\n[[access.allow]]\ngroup = \"4242\"\n"
        "commands = [\"status\", \"reload\"]\n");
  ASSERT_TRUE(ask_as(root, {{"cmd", "reload"}}).value("ok", false));
  EXPECT_TRUE(ask_as(member, {{"cmd", "reload"}}).value("ok", false));
}

}  // namespace
}  // namespace gridnode::agent
