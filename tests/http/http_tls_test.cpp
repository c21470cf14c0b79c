// http::Server over crypto::TlsStream, with the grid test PKI (tests/crypto/test_pki.hpp): one
// handshake carries many requests; what is not TLS is a counted handshake failure.

#include <gtest/gtest.h>

#include <asio/steady_timer.hpp>

#include "../crypto/test_pki.hpp"
#include "gridnode/crypto/tls.hpp"
#include "http_test_client.hpp"
#include "temp_dir.hpp"

namespace gridnode::http {
namespace {

using namespace std::chrono_literals;
using crypto::TlsContext;
using crypto::TlsOptions;
using crypto::TlsStream;
using tcp = asio::ip::tcp;

struct Pki {
  testing::TempDir dir;
  crypto::test::TestPki pki{dir.path()};
  crypto::test::PkiFiles ca = pki.make_ca("grid");
  crypto::test::PkiFiles server = pki.issue(
      "server", ca,
      {.cn = "node-1", .san = {"DNS:localhost", "IP:127.0.0.1"}, .ext_key_usage = "serverAuth"});
  crypto::test::PkiFiles client =
      pki.issue("prometheus", ca, {.cn = "prometheus", .ext_key_usage = "clientAuth"});
};

// Runs `io` until `done` or 5 s.
template <class F>
bool run_until(asio::io_context& io, F done) {
  const auto end = std::chrono::steady_clock::now() + 5s;
  io.restart();
  while (!done() && std::chrono::steady_clock::now() < end) {
    io.run_for(10ms);
  }
  return done();
}

// One response read from the stream (Content-Length framed).
std::string read_response(asio::io_context& io, TlsStream& tls, std::string& buffered) {
  char buf[4096];
  for (;;) {
    const auto end = buffered.find("\r\n\r\n");
    if (end != std::string::npos) {
      const auto cl = buffered.find("Content-Length: ");
      const std::size_t len = std::stoul(buffered.substr(cl + 16));
      if (buffered.size() >= end + 4 + len) {
        std::string r = buffered.substr(0, end + 4 + len);
        buffered.erase(0, end + 4 + len);
        return r;
      }
    }
    bool got = false, failed = false;
    tls.async_read_some(asio::buffer(buf), [&](platform::Result<std::size_t> r) {
      got = true;
      if (r) {
        buffered.append(buf, *r);
      } else {
        failed = true;
      }
    });
    if (!run_until(io, [&] { return got; }) || failed) {
      return {};
    }
  }
}

TEST(HttpServerTls, ManyRequestsOverOneHandshake) {
  GRIDNODE_REQUIRE_OPENSSL();
  Pki pki;
  auto ca = pki.ca.cert();
  auto server_ctx = TlsContext::create(TlsOptions{
      .server = true, .ca = ca, .cert = pki.server.cert(), .key = pki.server.key()});
  ASSERT_TRUE(server_ctx) << server_ctx.error().message();
  ServerOptions o;
  o.listen = {"127.0.0.1:0"};
  o.tls = *server_ctx;
  test::Running srv(o, [](const Request& req, Response& resp) {
    resp.body = std::string(req.tls ? "tls " : "plain ") + req.path + "\n";
  });

  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(srv.endpoint());
  auto client_ctx = TlsContext::create(TlsOptions{.server = false,
                                                  .ca = pki.ca.cert(),
                                                  .cert = pki.client.cert(),
                                                  .key = pki.client.key(),
                                                  .server_name = "127.0.0.1"});
  ASSERT_TRUE(client_ctx) << client_ctx.error().message();
  TlsStream tls(*client_ctx, std::move(socket));
  std::optional<platform::Result<void>> hs;
  tls.async_handshake([&](platform::Result<void> r) { hs = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return hs.has_value(); }));
  ASSERT_TRUE(*hs) << hs->error().message();

  std::string buffered;
  for (int i = 0; i < 5; ++i) {
    const std::string req = "GET /n" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
    bool written = false;
    tls.async_write(asio::buffer(req), [&](platform::Result<void> r) {
      EXPECT_TRUE(r);
      written = true;
    });
    ASSERT_TRUE(run_until(io, [&] { return written; }));
    const std::string r = read_response(io, tls, buffered);
    ASSERT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
    EXPECT_NE(r.find("\r\n\r\ntls /n" + std::to_string(i) + "\n"), std::string::npos) << r;
  }
  auto st = srv.stats();
  EXPECT_EQ(st.requests, 5u);
  EXPECT_EQ(st.open_connections, 1u);
  EXPECT_EQ(st.tls_handshake_failures, 0u);

  // Plain HTTP to the TLS port: a handshake failure, counted, and the connection closed.
  test::Client plain(srv.endpoint());
  plain.send("GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(plain.closed_by_server());
  EXPECT_EQ(plain.buffered().find("HTTP/1.1"), std::string::npos);
  for (int i = 0; i < 100 && srv.stats().tls_handshake_failures == 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(srv.stats().tls_handshake_failures, 1u);

  // The kept TLS connection still answers.
  const std::string req = "GET /again HTTP/1.1\r\n\r\n";
  bool written = false;
  tls.async_write(asio::buffer(req), [&](platform::Result<void>) { written = true; });
  ASSERT_TRUE(run_until(io, [&] { return written; }));
  EXPECT_NE(read_response(io, tls, buffered).find("tls /again"), std::string::npos);
  tls.close();
  io.restart();
  io.run_for(50ms);
}

}  // namespace
}  // namespace gridnode::http
