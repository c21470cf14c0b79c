#include "gridnode/collector/remote_sender.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <thread>

#include "temp_dir.hpp"

namespace gridnode::collector {
namespace {

TEST(RemotePosition, AbsentIsZeroAndWrittenIsReadBack) {
  testing::TempDir dir;
  auto none = read_remote_position(dir / "sink.jsonl.rw-vm");
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, RemotePosition{});
  const RemotePosition p{.offset = 4096,
                         .inflight_end = 8192,
                         .resend_from = 1024,
                         .acked_max_ms = 1795586100123,
                         .inode = 77};
  ASSERT_TRUE(write_remote_position(dir / "sink.jsonl.rw-vm", p));
  auto back = read_remote_position(dir / "sink.jsonl.rw-vm");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, p);
}

TEST(RemotePosition, UnreadableIsAnErrorNotAFreshStart) {
  testing::TempDir dir;
  std::ofstream(dir / "pos") << "{\"offset\": \"many\"}";
  auto p = read_remote_position(dir / "pos");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("not a remote-write position"), std::string::npos);
  std::ofstream(dir / "pos2") << "garbage";
  EXPECT_FALSE(read_remote_position(dir / "pos2"));
}

TEST(RemotePosition, ResendFromNeverPassesTheOffset) {
  testing::TempDir dir;
  std::ofstream(dir / "pos") << R"({"offset":10,"resend_from":99})";
  auto p = read_remote_position(dir / "pos");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->resend_from, 10u);
}

TEST(RemotePosition, LivesBesideTheSourceNamedByTheTarget) {
  RemoteTarget t;
  t.name = "vm";
  EXPECT_EQ(remote_position_path("/var/lib/gridnode/sink.jsonl", t),
            "/var/lib/gridnode/sink.jsonl.rw-vm");
}

}  // namespace
}  // namespace gridnode::collector

namespace gridnode::collector {
namespace {

// A remote-write receiver that answers each request with the next status of its script (200
// once the script is done) and keeps what it was sent. One connection at a time, closed after
// each answer.
class ScriptedReceiver {
 public:
  explicit ScriptedReceiver(std::vector<int> script) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedReceiver() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/v1/write"; }
  struct Request {
    std::string head, body;
    int answered = 0;
  };
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void serve() {
    for (std::size_t n = 0;; ++n) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        return;
      }
      std::string in;
      char buf[4096];
      std::size_t head_end = std::string::npos, length = 0;
      while (true) {
        const ssize_t r = ::read(c, buf, sizeof buf);
        if (r <= 0) {
          break;
        }
        in.append(buf, static_cast<std::size_t>(r));
        if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
          const auto at = in.find("Content-Length: ");
          length = at == std::string::npos ? 0 : std::stoul(in.substr(at + 16));
        }
        if (head_end != std::string::npos && in.size() >= head_end + 4 + length) {
          break;
        }
      }
      const int status = n < script_.size() ? script_[n] : 200;
      const std::string answer = "HTTP/1.1 " + std::to_string(status) +
                                 " X\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope";
      (void)!::write(c, answer.data(), answer.size());
      ::close(c);
      std::lock_guard lock(mu_);
      if (head_end != std::string::npos) {
        requests_.push_back({in.substr(0, head_end), in.substr(head_end + 4), status});
      }
    }
  }
  std::vector<int> script_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Request> requests_;
};

std::string gap_line(int seq) {
  return R"({"type":"gap","node":"node-1","from_seq":)" + std::to_string(seq) + R"(,"to_seq":)" +
         std::to_string(seq) + R"(,"time":"2026-11-25T05:55:0)" + std::to_string(seq) +
         R"(.000000000Z","reason":"r","raw":"AA"})" + "\n";
}

// Waits (bounded) until the sender delivered `offset` bytes.
bool delivered(const RemoteSender& s, std::uint64_t offset) {
  for (int i = 0; i < 200 && s.delivered() < offset; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return s.delivered() >= offset;
}

// One sample per batch: 503 is tried again with the same body, 400 drops its batch (the spec),
// 401 keeps it until it is taken; every request carries the remote-write headers and the
// credentials; the position ends at the file's end.
TEST(RemoteSender, RetriesDropsAndKeepsAsTheAnswersSay) {
  testing::TempDir dir;
  const std::string source = dir / "sink.jsonl";
  std::ofstream(source) << gap_line(1) << gap_line(2) << gap_line(3);
  const auto size = static_cast<std::uint64_t>(gap_line(1).size() * 3);
  ScriptedReceiver rx({503, 200, 400, 401, 200});
  RemoteTarget t;
  t.url = rx.url();
  t.name = "rx";
  t.username = "grid";
  t.password = "pw";
  t.max_samples = 1;
  t.resend_window = std::chrono::milliseconds(0);
  RemoteSender sender(t, source);
  ASSERT_TRUE(sender.start());
  ASSERT_TRUE(delivered(sender, size));
  sender.stop();
  const auto r = rx.requests();
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].body, r[1].body);  // 503: the same batch again
  EXPECT_NE(r[1].body, r[2].body);  // 200: the next one
  EXPECT_NE(r[2].body, r[3].body);  // 400: dropped, the next one
  EXPECT_EQ(r[3].body, r[4].body);  // 401: kept, the same again
  for (const auto& q : r) {
    EXPECT_NE(q.head.find("Content-Encoding: snappy"), std::string::npos);
    EXPECT_NE(q.head.find("Content-Type: application/x-protobuf"), std::string::npos);
    EXPECT_NE(q.head.find("X-Prometheus-Remote-Write-Version: 0.1.0"), std::string::npos);
    EXPECT_NE(q.head.find("Authorization: Basic Z3JpZDpwdw=="), std::string::npos);  // grid:pw
  }
  auto p = read_remote_position(remote_position_path(source, t));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->offset, size);
  EXPECT_EQ(p->inflight_end, size);
}

// At start (the target may have restarted while the sender was away), what the target
// acknowledged within the window is sent again before anything new.
TEST(RemoteSender, SendsTheAcknowledgedWindowAgainAtStart) {
  testing::TempDir dir;
  const std::string source = dir / "sink.jsonl";
  std::ofstream(source) << gap_line(1) << gap_line(2);
  const auto one = static_cast<std::uint64_t>(gap_line(1).size());
  RemoteTarget t;
  t.name = "rx";
  t.max_samples = 1;
  {
    ScriptedReceiver rx({});
    t.url = rx.url();
    RemoteSender sender(t, source);
    ASSERT_TRUE(sender.start());
    ASSERT_TRUE(delivered(sender, 2 * one));
    sender.stop();
    ASSERT_EQ(rx.requests().size(), 2u);
  }
  std::ofstream(source, std::ios::app) << gap_line(3);
  ScriptedReceiver rx({});
  t.url = rx.url();
  RemoteSender sender(t, source);
  ASSERT_TRUE(sender.start());
  ASSERT_TRUE(delivered(sender, 3 * one));
  sender.stop();
  const auto r = rx.requests();
  ASSERT_EQ(r.size(), 3u);  // lines 1 and 2 again (2 s apart: within 30 s), then line 3
}

}  // namespace
}  // namespace gridnode::collector
