#pragma once

// For the http tests: a Server running on its own thread (the loop), and a blocking client
// written with Asio on the test's thread, speaking raw bytes so that tests can send what no
// well-behaved client would.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

// clang-format off
#include <cstddef>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
// clang-format on
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "gridnode/http/server.hpp"

namespace gridnode::http::test {

using tcp = asio::ip::tcp;

// A Server on a loop thread of its own; stopped and joined by the destructor.
class Running {
 public:
  Running(ServerOptions options, Handler handler) {
    auto s = Server::make(io_, std::move(options), std::move(handler));
    EXPECT_TRUE(s) << s.error().message();
    server_ = std::move(*s);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Running() {
    asio::post(io_, [this] { server_->close(); });
    thread_.join();  // run() returns once every connection's handlers have ended
    server_.reset();
  }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;

  // Runs `f` on the loop and waits for its result.
  template <class F>
  auto on_loop(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }
  ServerStats stats() {
    return on_loop([this] { return server_->stats(); });
  }
  tcp::endpoint endpoint(std::size_t i = 0) const { return server_->local_endpoints().at(i); }
  Server& server() { return *server_; }

 private:
  asio::io_context io_{1};
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

struct Reply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
  bool ok = false;   // a whole response was read

  // The first header of that name (exact case as the server writes it), "" when absent.
  std::string header(const std::string& name) const {
    const std::string key = "\r\n" + name + ": ";
    const auto at = head.find(key);
    if (at == std::string::npos) {
      return {};
    }
    const auto from = at + key.size();
    return head.substr(from, head.find("\r\n", from) - from);
  }
};

// A blocking client; every read gives up after `timeout`.
class Client {
 public:
  explicit Client(const tcp::endpoint& ep, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    socket_.connect(ep, error_);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  bool connected() const { return !error_; }

  bool send(const std::string& bytes) {
    std::error_code ec;
    asio::write(socket_, asio::buffer(bytes), ec);
    return !ec;
  }

  // One response (Content-Length framed; no body for HEAD).
  Reply read(bool head = false) {
    Reply r;
    std::size_t end;
    while ((end = buffered_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) {
        return r;
      }
    }
    r.head = buffered_.substr(0, end + 2);
    buffered_.erase(0, end + 4);
    if (r.head.size() > 12) {
      r.status = std::atoi(r.head.substr(9, 3).c_str());
    }
    const std::size_t length =
        head ? 0 : static_cast<std::size_t>(std::atoll(r.header("Content-Length").c_str()));
    while (buffered_.size() < length) {
      if (!fill()) {
        return r;
      }
    }
    r.body = buffered_.substr(0, length);
    buffered_.erase(0, length);
    r.ok = true;
    return r;
  }

  Reply get(const std::string& target, const std::string& extra = "") {
    send("GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n");
    return read();
  }

  // True when the server closed the connection (EOF or reset) before `timeout` passed, with no
  // more bytes than `allowed` in between.
  bool closed_by_server() {
    while (fill()) {
    }
    return eof_;
  }
  const std::string& buffered() const { return buffered_; }
  tcp::socket& socket() { return socket_; }

 private:
  bool fill() {
    char buf[4096];
    std::error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(buf), ec);
    if (ec) {
      eof_ = ec == asio::error::eof || ec == asio::error::connection_reset;
      return false;
    }
    buffered_.append(buf, n);
    return true;
  }

  asio::io_context io_;
  tcp::socket socket_{io_};
  std::error_code error_;
  std::string buffered_;
  bool eof_ = false;
};

}  // namespace gridnode::http::test
