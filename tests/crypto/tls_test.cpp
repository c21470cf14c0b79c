// TlsStream over real sockets on 127.0.0.1 and ::1, with certificates made by the openssl
// command (test_pki.hpp). Each test owns one io_context and runs it in the test thread; peers
// that are not TlsStreams are raw Asio sockets on the same loop, or `openssl s_client` in a
// second thread (for interoperability and for a client with no certificate at all).

#include "gridnode/crypto/tls.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "crypto_test_util.hpp"
#include "gridnode/crypto/error.hpp"
#include "temp_dir.hpp"
#include "test_pki.hpp"

namespace gridnode::crypto {
namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// One PKI for the whole suite: making certificates with openssl takes a while.
struct Pki {
  testing::TempDir dir;
  test::TestPki pki{dir.path()};
  test::PkiFiles ca, server, node, other_ca, rogue, expired, cn_ip_server;
  std::optional<Certificate> ca_cert;
};

std::string q(const std::string& s) { return test::shell_quote(s); }

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_openssl()) {
      return;
    }
    pki_ = new Pki;
    test::TestPki& p = pki_->pki;
    pki_->ca = p.make_ca("grid");
    pki_->server = p.issue("server", pki_->ca,
                           {.cn = "collector",
                            .san = {"DNS:localhost", "IP:127.0.0.1", "IP:::1"},
                            .ext_key_usage = "serverAuth"});
    pki_->node = p.issue("node-1", pki_->ca, {.cn = "node-1", .ext_key_usage = "clientAuth"});
    pki_->other_ca = p.make_ca("other");
    // Same CN as a real node, but from a CA the collector does not trust.
    pki_->rogue = p.issue("rogue", pki_->other_ca, {.cn = "node-1", .ext_key_usage = "clientAuth"});
    pki_->expired = p.issue("expired", pki_->ca,
                            {.cn = "node-2",
                             .ext_key_usage = "clientAuth",
                             .not_before = "20200101000000Z",
                             .not_after = "20200102000000Z"});
    // The IP only in the CN: mbedTLS would match it if we let it; we must not.
    pki_->cn_ip_server =
        p.issue("cn-ip", pki_->ca,
                {.cn = "127.0.0.1", .san = {"DNS:localhost"}, .ext_key_usage = "serverAuth"});
    pki_->ca_cert.emplace(pki_->ca.cert());
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    GRIDNODE_REQUIRE_OPENSSL();
    ASSERT_NE(pki_, nullptr);
  }

  // Lets lingering closes and posted handlers finish, so nothing is left for the destructor.
  void TearDown() override {
    run_until([] { return false; }, 0ms);
  }

  static TlsOptions server_options(const test::PkiFiles& who = pki_->server) {
    return TlsOptions{.server = true, .ca = *pki_->ca_cert, .cert = who.cert(), .key = who.key()};
  }
  static TlsOptions client_options(std::string server_name = "localhost",
                                   const test::PkiFiles& who = pki_->node) {
    return TlsOptions{.server = false,
                      .ca = *pki_->ca_cert,
                      .cert = who.cert(),
                      .key = who.key(),
                      .server_name = std::move(server_name)};
  }
  static std::shared_ptr<TlsContext> context(TlsOptions options) {
    auto ctx = TlsContext::create(std::move(options));
    EXPECT_TRUE(ctx) << ctx.error().message();
    return ctx.value();
  }

  // Runs the loop until done() (true) or `limit` (false). With limit 0: until no work is left.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    if (limit == 0ms) {
      io_.restart();
      io_.run_for(5s);
      return true;
    }
    const auto deadline = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() >= deadline) {
        return false;
      }
      if (io_.stopped()) {
        io_.restart();
      }
      if (io_.run_one_for(10ms) == 0 && io_.stopped()) {
        // Nothing queued on the loop: only another thread (openssl) can make progress.
        std::this_thread::sleep_for(1ms);
      }
    }
    return true;
  }

  // A connected pair over loopback, made before the loop runs (the kernel completes a loopback
  // connect to a listening socket at once). False when the address family is unavailable.
  bool connect_pair(const asio::ip::address& addr, tcp::socket& server, tcp::socket& client) {
    std::error_code ec;
    tcp::acceptor acceptor(io_);
    acceptor.open(addr.is_v6() ? tcp::v6() : tcp::v4(), ec);
    if (!ec) {
      acceptor.bind({addr, 0}, ec);
    }
    if (!ec) {
      acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      return false;
    }
    client.connect(acceptor.local_endpoint(), ec);
    EXPECT_FALSE(ec) << ec.message();
    acceptor.accept(server, ec);
    EXPECT_FALSE(ec) << ec.message();
    return !ec;
  }

  struct Pair {
    std::unique_ptr<TlsStream> server;
    std::unique_ptr<TlsStream> client;
  };
  Pair make_pair(std::shared_ptr<TlsContext> server_ctx, std::shared_ptr<TlsContext> client_ctx,
                 const asio::ip::address& addr = asio::ip::address_v4::loopback()) {
    tcp::socket s(io_), c(io_);
    if (!connect_pair(addr, s, c)) {
      return {};
    }
    return {std::make_unique<TlsStream>(std::move(server_ctx), std::move(s)),
            std::make_unique<TlsStream>(std::move(client_ctx), std::move(c))};
  }

  struct Handshakes {
    std::optional<platform::Result<void>> server, client;
  };
  Handshakes handshake(Pair& p) {
    Handshakes h;
    p.server->async_handshake([&h](platform::Result<void> r) { h.server = std::move(r); });
    p.client->async_handshake([&h](platform::Result<void> r) { h.client = std::move(r); });
    EXPECT_TRUE(run_until([&h] { return h.server && h.client; }));
    return h;
  }

  static std::string error_of(const std::optional<platform::Result<void>>& r) {
    if (!r) {
      return "(no result)";
    }
    return *r ? "(success)" : r->error().message();
  }

  static inline Pki* pki_ = nullptr;
  asio::io_context io_{1};
};

// A peer that echoes what it reads until its read fails.
struct Echo : std::enable_shared_from_this<Echo> {
  explicit Echo(TlsStream& s) : stream(s) {}
  void do_read() {
    stream.async_read_some(asio::buffer(buf), [self = shared_from_this()](auto n) {
      if (!n) {
        self->end = n.error();
        return;
      }
      self->echoed += *n;
      self->do_write(*n);
    });
  }
  void do_write(std::size_t n) {
    stream.async_write(asio::buffer(buf.data(), n), [self = shared_from_this()](auto r) {
      if (!r) {
        self->end = r.error();
        return;
      }
      self->do_read();
    });
  }
  TlsStream& stream;
  std::array<std::uint8_t, 8192> buf{};
  std::size_t echoed = 0;
  std::optional<platform::Error> end;
};

std::vector<std::uint8_t> pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  std::uint32_t x = 2463534242u;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<std::uint8_t>(x);
  }
  return v;
}

// --- Handshake and data --------------------------------------------------------------------

class TlsBothFamilies : public Tls, public ::testing::WithParamInterface<const char*> {};

TEST_P(TlsBothFamilies, MutualHandshakeThenOneMebibyteEchoedIntact) {
  const auto addr = asio::ip::make_address(GetParam());
  // Expect the name as a DNS name on v4 and as the IP literal on v6: both checks pass.
  auto p = make_pair(context(server_options()),
                     context(client_options(addr.is_v6() ? "::1" : "localhost")), addr);
  if (!p.server) {
    GTEST_SKIP() << GetParam() << " is not available here";
  }
  auto h = handshake(p);
  ASSERT_TRUE(h.server && *h.server) << error_of(h.server);
  ASSERT_TRUE(h.client && *h.client) << error_of(h.client);
  EXPECT_EQ(p.server->peer_common_name(), "node-1");
  EXPECT_EQ(p.client->peer_common_name(), "collector");
  ASSERT_TRUE(p.client->peer_certificate());
  EXPECT_EQ(p.client->peer_certificate()->public_key(), pki_->server.cert().public_key());
  ASSERT_TRUE(p.server->peer_certificate());
  const Certificate node_cert = pki_->node.cert();
  const auto peer_der = p.server->peer_certificate()->der();
  EXPECT_TRUE(
      std::equal(node_cert.der().begin(), node_cert.der().end(), peer_der.begin(), peer_der.end()));
  EXPECT_EQ(p.server->ciphersuite(), "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256");
  EXPECT_EQ(p.client->ciphersuite(), p.server->ciphersuite());
  EXPECT_THAT(p.client->remote_endpoint_text(), HasSubstr(addr.is_v6() ? "[::1]:" : "127.0.0.1:"));

  auto echo = std::make_shared<Echo>(*p.server);
  echo->do_read();

  const std::vector<std::uint8_t> sent = pattern(1 << 20);
  std::vector<std::uint8_t> received;
  std::size_t offset = 0;
  const std::size_t chunks[] = {1, 100, 4096, 16384, 16385, 50000, 7, 70000};
  std::size_t chunk_index = 0;
  std::optional<platform::Error> client_error;
  std::function<void()> write_next = [&] {
    if (offset == sent.size()) {
      return;
    }
    const std::size_t n = std::min(chunks[chunk_index++ % std::size(chunks)], sent.size() - offset);
    p.client->async_write(asio::buffer(sent.data() + offset, n), [&, n](auto r) {
      if (!r) {
        client_error = r.error();
        return;
      }
      offset += n;
      write_next();
    });
  };
  std::array<std::uint8_t, 5000> rbuf{};
  std::function<void()> read_next = [&] {
    p.client->async_read_some(asio::buffer(rbuf), [&](auto n) {
      if (!n) {
        client_error = n.error();
        return;
      }
      EXPECT_GT(*n, 0u);
      received.insert(received.end(), rbuf.begin(), rbuf.begin() + static_cast<long>(*n));
      if (received.size() < sent.size()) {
        read_next();
      }
    });
  };
  write_next();
  read_next();
  ASSERT_TRUE(run_until([&] { return received.size() >= sent.size() || client_error; }, 60s));
  ASSERT_FALSE(client_error) << client_error->message();
  EXPECT_EQ(offset, sent.size());
  EXPECT_EQ(echo->echoed, sent.size());
  EXPECT_TRUE(received == sent) << "echoed bytes differ";

  p.client->close();
  ASSERT_TRUE(run_until([&] { return echo->end.has_value(); }));
  EXPECT_EQ(echo->end->code, std::errc::connection_reset) << echo->end->message();
  EXPECT_THAT(echo->end->context, HasSubstr("without close_notify"));
}

INSTANTIATE_TEST_SUITE_P(Loopback, TlsBothFamilies, ::testing::Values("127.0.0.1", "::1"));

TEST_F(Tls, ManySmallWritesBothWaysAtOnce) {
  auto p = make_pair(context(server_options()), context(client_options()));
  auto h = handshake(p);
  ASSERT_TRUE(*h.server && *h.client) << error_of(h.server) << " / " << error_of(h.client);

  // Each side writes 2000 messages of 1..9 bytes, one after another, while reading the
  // other's: reads and writes overlap on both streams.
  struct Side {
    TlsStream* stream;
    std::vector<std::uint8_t> out, in;
    std::size_t sent = 0, writes = 0;
    std::array<std::uint8_t, 64> rbuf{};
    std::optional<platform::Error> error{};
  };
  Side sides[2] = {{p.server.get(), pattern(2000 * 5), {}}, {p.client.get(), {}, {}}};
  sides[1].out = std::vector<std::uint8_t>(sides[0].out.rbegin(), sides[0].out.rend());
  std::function<void(Side&)> write_next = [&](Side& s) {
    if (s.sent == s.out.size()) {
      return;
    }
    const std::size_t n = std::min<std::size_t>(1 + s.writes % 9, s.out.size() - s.sent);
    s.stream->async_write(asio::buffer(s.out.data() + s.sent, n), [&, n](auto r) {
      if (!r) {
        s.error = r.error();
        return;
      }
      s.sent += n;
      ++s.writes;
      write_next(s);
    });
  };
  std::function<void(Side&, const Side&)> read_next = [&](Side& s, const Side& peer) {
    s.stream->async_read_some(asio::buffer(s.rbuf), [&](auto n) {
      if (!n) {
        s.error = n.error();
        return;
      }
      s.in.insert(s.in.end(), s.rbuf.begin(), s.rbuf.begin() + static_cast<long>(*n));
      if (s.in.size() < peer.out.size()) {
        read_next(s, peer);
      }
    });
  };
  for (int i = 0; i < 2; ++i) {
    write_next(sides[i]);
    read_next(sides[i], sides[1 - i]);
  }
  ASSERT_TRUE(run_until(
      [&] {
        return (sides[0].in.size() == sides[1].out.size() &&
                sides[1].in.size() == sides[0].out.size()) ||
               sides[0].error || sides[1].error;
      },
      60s));
  ASSERT_FALSE(sides[0].error) << sides[0].error->message();
  ASSERT_FALSE(sides[1].error) << sides[1].error->message();
  EXPECT_GT(sides[0].writes, 1000u);
  EXPECT_TRUE(sides[0].in == sides[1].out);
  EXPECT_TRUE(sides[1].in == sides[0].out);
  p.client->close();
  p.server->close();
}

TEST_F(Tls, ManyStreamsShareOneContext) {
  // As in the collector: one server context, many connections handshaking at once.
  auto server_ctx = context(server_options());
  auto client_ctx = context(client_options());
  std::vector<Pair> pairs;
  int ok = 0, failed = 0;
  for (int i = 0; i < 24; ++i) {
    pairs.push_back(make_pair(server_ctx, client_ctx));
    ASSERT_TRUE(pairs.back().server);
  }
  for (Pair& p : pairs) {
    for (TlsStream* s : {p.server.get(), p.client.get()}) {
      s->async_handshake([&](platform::Result<void> r) { ++(r ? ok : failed); });
    }
  }
  ASSERT_TRUE(run_until([&] { return ok + failed == 48; }, 30s));
  EXPECT_EQ(failed, 0);
  for (Pair& p : pairs) {
    EXPECT_EQ(p.server->peer_common_name(), "node-1");
    p.server->close();
    p.client->close();
  }
}

TEST_F(Tls, ShutdownSendsCloseNotifyAfterQueuedData) {
  auto p = make_pair(context(server_options()), context(client_options()));
  auto h = handshake(p);
  ASSERT_TRUE(*h.server && *h.client);

  const std::string last = "last words";
  bool written = false, client_down = false, server_down = false;
  p.client->async_write(asio::buffer(last), [&](auto r) {
    EXPECT_TRUE(r);
    written = true;
    p.client->async_shutdown([&] { client_down = true; });
  });
  std::string got;
  std::optional<platform::Error> server_end;
  std::array<char, 64> buf{};
  std::function<void()> read_next = [&] {
    p.server->async_read_some(asio::buffer(buf), [&](auto n) {
      if (!n) {
        server_end = n.error();
        p.server->async_shutdown([&] { server_down = true; });
        return;
      }
      got.append(buf.data(), *n);
      read_next();
    });
  };
  read_next();
  const auto start = Clock::now();
  ASSERT_TRUE(run_until([&] { return client_down && server_down; }));
  // Both sides saw each other's FIN: neither waited for shutdown_timeout (2 s).
  EXPECT_LT(Clock::now() - start, 1500ms);
  EXPECT_TRUE(written);
  EXPECT_EQ(got, last);
  ASSERT_TRUE(server_end);
  EXPECT_EQ(server_end->code, std::errc::connection_reset);
  EXPECT_THAT(server_end->context, HasSubstr("closed by peer"));
  EXPECT_THAT(server_end->context, Not(HasSubstr("without close_notify")));
  // Dead now: later operations fail at once.
  std::optional<platform::Result<void>> late;
  p.client->async_write(asio::buffer(last), [&](auto r) { late = std::move(r); });
  ASSERT_TRUE(run_until([&] { return late.has_value(); }));
  EXPECT_FALSE(*late);
}

// --- The server refuses --------------------------------------------------------------------

TEST_F(Tls, ServerRefusesClientCertificateFromAnotherCa) {
  auto p = make_pair(context(server_options()), context(client_options("localhost", pki_->rogue)));
  auto h = handshake(p);
  ASSERT_FALSE(*h.server);
  EXPECT_THAT(h.server->error().message(), HasSubstr("TLS handshake with 127.0.0.1:"));
  EXPECT_THAT(h.server->error().message(), HasSubstr("the client's certificate was refused"));
  EXPECT_THAT(h.server->error().message(), HasSubstr("not correctly signed by the trusted CA"));
  EXPECT_THAT(h.server->error().message(), HasSubstr("X509 - Certificate verification failed"));
  ASSERT_FALSE(*h.client);
  EXPECT_THAT(h.client->error().message(), HasSubstr("the peer refused us with alert unknown_ca"));
  EXPECT_EQ(p.server->peer_common_name(), "");
}

TEST_F(Tls, ServerRefusesExpiredClientCertificate) {
  auto p =
      make_pair(context(server_options()), context(client_options("localhost", pki_->expired)));
  auto h = handshake(p);
  ASSERT_FALSE(*h.server);
  EXPECT_THAT(h.server->error().message(), HasSubstr("The certificate validity has expired"));
  ASSERT_FALSE(*h.client);
  EXPECT_THAT(h.client->error().message(), HasSubstr("certificate_expired"));
}

// Runs `command` in another thread while the loop runs here.
std::future<test::CommandResult> run_in_thread(std::string command) {
  return std::async(std::launch::async,
                    [command = std::move(command)] { return test::run_command(command); });
}

// One TlsStream server on 127.0.0.1 for one openssl s_client.
struct OpensslPeer {
  tcp::acceptor acceptor;
  std::unique_ptr<TlsStream> stream;
  std::optional<platform::Result<void>> handshake;
  std::string received;
  std::optional<platform::Error> read_end;
  std::array<char, 256> buf{};

  OpensslPeer(asio::io_context& io, std::shared_ptr<TlsContext> ctx)
      : acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    acceptor.async_accept([this, ctx](std::error_code ec, tcp::socket socket) {
      ASSERT_FALSE(ec) << ec.message();
      stream = std::make_unique<TlsStream>(ctx, std::move(socket));
      stream->async_handshake([this](platform::Result<void> r) {
        handshake = r;
        if (r) {
          do_read();
        }
      });
    });
  }
  void do_read() {
    stream->async_read_some(asio::buffer(buf), [this](auto n) {
      if (!n) {
        read_end = n.error();
        return;
      }
      received.append(buf.data(), *n);
      do_read();
    });
  }
  std::string port() const { return std::to_string(acceptor.local_endpoint().port()); }
};

TEST_F(Tls, ServerRefusesClientWithoutCertificate) {
  OpensslPeer peer(io_, context(server_options()));
  auto client = run_in_thread("timeout 20 openssl s_client -connect 127.0.0.1:" + peer.port() +
                              " -tls1_2 -servername localhost -CAfile " + q(pki_->ca.cert_path) +
                              " </dev/null");
  ASSERT_TRUE(run_until(
      [&] {
        return client.wait_for(0s) == std::future_status::ready && peer.handshake.has_value();
      },
      30s));
  ASSERT_FALSE(*peer.handshake);
  EXPECT_THAT(peer.handshake->error().message(), HasSubstr("No client certification received"));
  EXPECT_TRUE(peer.received.empty());
  EXPECT_NE(client.get().status, 0);
}

TEST_F(Tls, OpensslClientInteroperatesAndOnlyOurSuitesAreAccepted) {
  struct Case {
    std::string args;
    std::string mbedtls_suite;  // "" when the handshake must fail
  };
  const std::string id = " -cert " + q(pki_->node.cert_path) + " -key " + q(pki_->node.key_path);
  const Case cases[] = {
      {"-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256" + id,
       "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"},
      {"-tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384" + id,
       "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"},
      {"-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305" + id,
       "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"},
      {"-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA256" + id, ""},  // CBC: refused
      {"-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA" + id, ""},
      {"-tls1_2 -curves secp384r1" + id, ""},  // P-256 only
      {"-tls1_3" + id, ""},                    // TLS 1.2 only
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    OpensslPeer peer(io_, context(server_options()));
    auto client = run_in_thread(
        "printf hello | timeout 20 openssl s_client -brief -connect 127.0.0.1:" + peer.port() +
        " -servername localhost -verify_return_error -CAfile " + q(pki_->ca.cert_path) + " " +
        c.args);
    ASSERT_TRUE(run_until(
        [&] {
          return client.wait_for(0s) == std::future_status::ready && peer.handshake.has_value() &&
                 (!*peer.handshake || peer.read_end.has_value());
        },
        30s))
        << (client.wait_for(0s) == std::future_status::ready ? client.get().output : "");
    const test::CommandResult out = client.get();
    if (c.mbedtls_suite.empty()) {
      EXPECT_FALSE(*peer.handshake) << out.output;
      EXPECT_TRUE(peer.received.empty());
    } else {
      ASSERT_TRUE(*peer.handshake) << peer.handshake->error().message() << "\n" << out.output;
      EXPECT_EQ(peer.stream->ciphersuite(), c.mbedtls_suite);
      EXPECT_EQ(peer.stream->peer_common_name(), "node-1");
      EXPECT_EQ(peer.received, "hello");
      EXPECT_THAT(out.output, HasSubstr("Protocol version: TLSv1.2"));
    }
    peer.stream->close();
    run_until([] { return false; }, 0ms);
  }
}

TEST_F(Tls, ServerRefusesPlaintextPeers) {
  const std::string http = "GET / HTTP/1.0\r\n\r\n";
  const std::string frame("\x00\x00\x00\x10gridnode report\x01", 20);
  for (const std::string& clear : {http, frame}) {
    tcp::socket s(io_), raw(io_);
    ASSERT_TRUE(connect_pair(asio::ip::address_v4::loopback(), s, raw));
    TlsStream server(context(server_options()), std::move(s));
    std::optional<platform::Result<void>> hs;
    server.async_handshake([&](auto r) { hs = r; });
    std::string answer;
    bool raw_done = false;
    asio::async_write(raw, asio::buffer(clear), [&](std::error_code ec, std::size_t) {
      EXPECT_FALSE(ec);
      asio::async_read(raw, asio::dynamic_buffer(answer),
                       [&](std::error_code, std::size_t) { raw_done = true; });
    });
    ASSERT_TRUE(run_until([&] { return hs.has_value() && raw_done; }));
    ASSERT_FALSE(*hs);
    EXPECT_THAT(hs->error().message(), HasSubstr("the peer does not speak TLS"));
    EXPECT_THAT(hs->error().message(),
                HasSubstr(clear == http ? "first byte is 0x47 'G'" : "first byte is 0x00"));
    // What came back is at most a TLS alert record, never our bytes or any data.
    EXPECT_TRUE(answer.empty() || answer[0] == '\x15') << answer;
    EXPECT_THAT(answer, Not(HasSubstr("GET")));
    // The stream is dead: no read ever delivers the bytes.
    std::optional<platform::Result<std::size_t>> rd;
    std::array<char, 64> buf{};
    server.async_read_some(asio::buffer(buf), [&](auto n) { rd = n; });
    ASSERT_TRUE(run_until([&] { return rd.has_value(); }));
    EXPECT_FALSE(*rd);
  }
}

// --- The client refuses --------------------------------------------------------------------

TEST_F(Tls, ClientRefusesServerNameMismatch) {
  auto p = make_pair(context(server_options()), context(client_options("collector.example")));
  auto h = handshake(p);
  ASSERT_FALSE(*h.client);
  EXPECT_THAT(h.client->error().message(),
              HasSubstr("the server's certificate for \"collector.example\" was refused"));
  EXPECT_THAT(h.client->error().message(), HasSubstr("Common Name (CN) does not match"));
  ASSERT_FALSE(*h.server);
  EXPECT_THAT(h.server->error().message(), HasSubstr("alert"));
}

TEST_F(Tls, ClientMatchesIpLiteralsOnlyAgainstSanIpAddresses) {
  struct Case {
    const char* addr;
    const char* name;
    const test::PkiFiles* server;
    bool ok;
  };
  const Case cases[] = {
      {"127.0.0.1", "127.0.0.1", &pki_->server, true},
      {"::1", "::1", &pki_->server, true},
      {"::1", "[::1]", &pki_->server, true},
      {"::1", "0:0:0:0:0:0:0:1", &pki_->server, true},
      {"127.0.0.1", "127.0.0.2", &pki_->server, false},
      {"127.0.0.1", "::ffff:127.0.0.1", &pki_->server, false},
      // The address in the CN only: refused, though mbedTLS's own check would accept it.
      {"127.0.0.1", "127.0.0.1", &pki_->cn_ip_server, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + " via " + c.addr + " with " + c.server->name);
    auto p = make_pair(context(server_options(*c.server)), context(client_options(c.name)),
                       asio::ip::make_address(c.addr));
    if (!p.server) {
      continue;  // no IPv6 here
    }
    auto h = handshake(p);
    ASSERT_TRUE(h.client);
    if (c.ok) {
      EXPECT_TRUE(*h.client) << error_of(h.client);
      EXPECT_TRUE(*h.server) << error_of(h.server);
    } else {
      ASSERT_FALSE(*h.client);
      EXPECT_THAT(h.client->error().message(),
                  HasSubstr("the IP address " + std::string(c.name) +
                            " is not among its subjectAltName iPAddress entries"));
      EXPECT_FALSE(*h.server);
    }
    p.client->close();
    p.server->close();
  }
}

TEST_F(Tls, ClientChecksThePinnedServerKey) {
  const Digest right = pki_->pki.spki_sha256(pki_->server);
  // Our own certificate's SHA-256 of the SPKI must agree with openssl's.
  const auto spki = pki_->server.cert().public_key().to_der().value();
  ASSERT_EQ(sha256(spki), right);
  const Digest wrong = pki_->pki.spki_sha256(pki_->node);

  for (const Digest& pin : {right, wrong}) {
    TlsOptions options = client_options();
    options.pinned_server_key = pin;
    auto p = make_pair(context(server_options()), context(std::move(options)));
    auto h = handshake(p);
    if (pin == right) {
      EXPECT_TRUE(*h.client) << error_of(h.client);
      EXPECT_TRUE(*h.server) << error_of(h.server);
    } else {
      ASSERT_FALSE(*h.client);
      EXPECT_THAT(
          h.client->error().message(),
          HasSubstr("its public key " + to_hex(right) + " is not the pinned key " + to_hex(wrong)));
      // Refused while checking the server's certificate: the server never got ours.
      ASSERT_FALSE(*h.server);
      EXPECT_THAT(h.server->error().message(), HasSubstr("the peer refused us with alert"));
      EXPECT_EQ(p.server->peer_common_name(), "");
    }
    p.client->close();
    p.server->close();
  }
}

// ALPN is how the uplink learns that both ends speak the session's policy frames
// (docs/protocol.md §6b): every mix of old and new peers must still connect.
TEST_F(Tls, AlpnIsAgreedWhenBothOfferItAndIgnoredByAPeerWithout) {
  struct Case {
    std::vector<std::string> server, client;
    const char* agreed;  // nullptr: the handshake fails
  };
  const Case cases[] = {
      {{"gridnode/2"}, {"gridnode/2"}, "gridnode/2"},
      {{}, {"gridnode/2"}, ""},                  // an old collector: ignores the extension
      {{"gridnode/2"}, {}, ""},                  // an old agent: offers nothing
      {{}, {}, ""},
      {{"gridnode/3", "gridnode/2"}, {"gridnode/2", "gridnode/3"}, "gridnode/3"},  // server's pick
      {{"gridnode/2"}, {"h2"}, nullptr},          // offered, nothing in common: refused
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.client.empty() ? "client without ALPN" : "client offers " + c.client[0]);
    TlsOptions so = server_options();
    so.alpn = c.server;
    TlsOptions co = client_options();
    co.alpn = c.client;
    auto p = make_pair(context(std::move(so)), context(std::move(co)));
    EXPECT_EQ(p.client->alpn_protocol(), "");  // nothing before the handshake
    auto h = handshake(p);
    if (c.agreed == nullptr) {
      EXPECT_FALSE(*h.server);
      EXPECT_FALSE(*h.client);
    } else {
      ASSERT_TRUE(*h.client) << error_of(h.client);
      ASSERT_TRUE(*h.server) << error_of(h.server);
      EXPECT_EQ(p.server->alpn_protocol(), c.agreed);
      EXPECT_EQ(p.client->alpn_protocol(), c.agreed);
    }
    p.client->close();
    p.server->close();
  }
  TlsOptions bad = client_options();
  bad.alpn = {""};
  EXPECT_FALSE(TlsContext::create(std::move(bad)));
}

TEST_F(Tls, ClientRefusesPlaintextServer) {
  tcp::socket raw(io_), c(io_);
  ASSERT_TRUE(connect_pair(asio::ip::address_v4::loopback(), raw, c));
  TlsStream client(context(client_options()), std::move(c));
  std::optional<platform::Result<void>> hs;
  client.async_handshake([&](auto r) { hs = r; });
  std::array<char, 4096> hello{};
  const std::string reply = "HTTP/1.0 400 Bad Request\r\n\r\n";
  raw.async_read_some(asio::buffer(hello), [&](std::error_code ec, std::size_t) {
    EXPECT_FALSE(ec);
    asio::async_write(raw, asio::buffer(reply), [](std::error_code, std::size_t) {});
  });
  ASSERT_TRUE(run_until([&] { return hs.has_value(); }));
  ASSERT_FALSE(*hs);
  EXPECT_THAT(hs->error().message(),
              HasSubstr("the peer does not speak TLS (its first byte is 0x48 'H')"));
  raw.close();
}

// --- Timeouts and hang-ups -------------------------------------------------------------------

TEST_F(Tls, HandshakeTimesOutOnASilentPeer) {
  for (bool server_side : {true, false}) {
    SCOPED_TRACE(server_side ? "silent client" : "silent server");
    tcp::socket s(io_), c(io_);
    ASSERT_TRUE(connect_pair(asio::ip::address_v4::loopback(), s, c));
    TlsOptions options = server_side ? server_options() : client_options();
    options.handshake_timeout = 200ms;
    TlsStream stream(context(std::move(options)), server_side ? std::move(s) : std::move(c));
    tcp::socket& silent = server_side ? c : s;
    std::optional<platform::Result<void>> hs;
    const auto start = Clock::now();
    stream.async_handshake([&](auto r) { hs = r; });
    ASSERT_TRUE(run_until([&] { return hs.has_value(); }, 5s));
    const auto took = Clock::now() - start;
    ASSERT_FALSE(*hs);
    EXPECT_EQ(hs->error().code, std::errc::timed_out);
    EXPECT_THAT(hs->error().message(), HasSubstr("timed out after 200 ms"));
    EXPECT_GE(took, 190ms);
    EXPECT_LT(took, 2s);
    // The socket was closed: the silent peer sees EOF.
    std::string rest;
    std::error_code ec;
    asio::read(silent, asio::dynamic_buffer(rest), ec);
    EXPECT_EQ(ec, asio::error::eof);
  }
}

// The first bytes of a real ClientHello, then a hang-up; and a server that hangs up on one.
TEST_F(Tls, PeerHangingUpMidHandshakeIsACleanError) {
  {
    tcp::socket s(io_), raw(io_);
    ASSERT_TRUE(connect_pair(asio::ip::address_v4::loopback(), s, raw));
    TlsStream server(context(server_options()), std::move(s));
    std::optional<platform::Result<void>> hs;
    server.async_handshake([&](auto r) { hs = r; });
    // A handshake record header announcing 200 bytes, then 4 of them.
    const std::uint8_t half[] = {0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4};
    asio::write(raw, asio::buffer(half));
    raw.shutdown(tcp::socket::shutdown_both);
    raw.close();
    ASSERT_TRUE(run_until([&] { return hs.has_value(); }));
    ASSERT_FALSE(*hs);
    EXPECT_EQ(hs->error().code, std::errc::connection_reset) << hs->error().message();
    EXPECT_THAT(hs->error().message(), HasSubstr("connection closed by peer"));
  }
  {
    tcp::socket raw(io_), c(io_);
    ASSERT_TRUE(connect_pair(asio::ip::address_v4::loopback(), raw, c));
    TlsStream client(context(client_options()), std::move(c));
    std::optional<platform::Result<void>> hs;
    client.async_handshake([&](auto r) { hs = r; });
    std::array<std::uint8_t, 4096> hello{};
    raw.async_read_some(asio::buffer(hello), [&](std::error_code ec, std::size_t n) {
      EXPECT_FALSE(ec);
      EXPECT_GT(n, 5u);
      EXPECT_EQ(hello[0], 0x16);  // a ClientHello
      // Half a ServerHello record, then gone.
      const std::uint8_t half[] = {0x16, 0x03, 0x03, 0x00, 0x40, 0x02, 0x00};
      std::error_code wec;
      asio::write(raw, asio::buffer(half), wec);
      raw.close();
    });
    ASSERT_TRUE(run_until([&] { return hs.has_value(); }));
    ASSERT_FALSE(*hs);
    EXPECT_EQ(hs->error().code, std::errc::connection_reset) << hs->error().message();
  }
}

TEST_F(Tls, PeerHangingUpMidRecordIsACleanError) {
  auto p = make_pair(context(server_options()), context(client_options()));
  auto h = handshake(p);
  ASSERT_TRUE(*h.server && *h.client);
  std::optional<platform::Result<std::size_t>> rd;
  std::array<char, 64> buf{};
  p.server->async_read_some(asio::buffer(buf), [&](auto n) { rd = n; });
  // Under the client stream: half an application-data record, then the socket goes.
  const std::uint8_t half[] = {0x17, 0x03, 0x03, 0x00, 0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  asio::write(p.client->socket(), asio::buffer(half));
  p.client->socket().close();
  ASSERT_TRUE(run_until([&] { return rd.has_value(); }));
  ASSERT_FALSE(*rd);
  EXPECT_EQ(rd->error().code, std::errc::connection_reset) << rd->error().message();
  EXPECT_THAT(rd->error().message(), HasSubstr("without close_notify (truncated)"));
  p.client->close();
}

TEST_F(Tls, ForgedRecordIsAnErrorNotData) {
  auto p = make_pair(context(server_options()), context(client_options()));
  auto h = handshake(p);
  ASSERT_TRUE(*h.server && *h.client);
  std::optional<platform::Result<std::size_t>> rd;
  std::array<char, 64> buf{};
  p.server->async_read_some(asio::buffer(buf), [&](auto n) { rd = n; });
  // A whole application-data record that was never encrypted with the session's keys.
  std::vector<std::uint8_t> forged = {0x17, 0x03, 0x03, 0x00, 0x30};
  forged.resize(5 + 0x30, 0x41);
  asio::write(p.client->socket(), asio::buffer(forged));
  ASSERT_TRUE(run_until([&] { return rd.has_value(); }));
  ASSERT_FALSE(*rd);
  EXPECT_EQ(rd->error().code.category(), mbedtls_category()) << rd->error().message();
  p.client->close();
}

// --- close() --------------------------------------------------------------------------------

TEST_F(Tls, CloseCallsEachPendingHandlerOnceWithAnError) {
  auto p = make_pair(context(server_options()), context(client_options()));
  auto h = handshake(p);
  ASSERT_TRUE(*h.server && *h.client);

  int reads = 0, writes = 0, second_reads = 0;
  std::optional<platform::Result<std::size_t>> rd, second;
  std::optional<platform::Result<void>> wr;
  std::array<char, 64> buf{};
  // The server reads nothing, so 32 MiB cannot all fit in the socket buffers.
  const std::vector<std::uint8_t> big(32 << 20, 0x5a);
  p.client->async_read_some(asio::buffer(buf), [&](auto n) {
    ++reads;
    rd = n;
  });
  p.client->async_read_some(asio::buffer(buf), [&](auto n) {
    ++second_reads;
    second = n;
  });
  p.client->async_write(asio::buffer(big), [&](auto r) {
    ++writes;
    wr = r;
  });
  ASSERT_TRUE(run_until([&] { return second.has_value(); }));
  EXPECT_EQ(second->error().code, std::errc::operation_in_progress);
  run_until([] { return false; }, 100ms);  // let the write fill the socket buffers
  EXPECT_EQ(reads + writes, 0);

  p.client->close();
  ASSERT_TRUE(run_until([&] { return reads == 1 && writes == 1; }));
  run_until([] { return false; }, 0ms);
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(writes, 1);
  EXPECT_EQ(second_reads, 1);
  EXPECT_EQ(rd->error().code, asio::error::operation_aborted);
  EXPECT_EQ(wr->error().code, asio::error::operation_aborted);
  p.server->close();
}

TEST_F(Tls, CloseOrDestroyDuringHandshakeCallsTheHandlerOnce) {
  for (bool destroy : {false, true}) {
    tcp::socket s(io_), c(io_);
    ASSERT_TRUE(connect_pair(asio::ip::address_v4::loopback(), s, c));
    auto client = std::make_unique<TlsStream>(context(client_options()), std::move(c));
    int calls = 0;
    std::optional<platform::Result<void>> hs;
    client->async_handshake([&](auto r) {
      ++calls;
      hs = r;
    });
    run_until([] { return false; }, 50ms);  // ClientHello out, no answer: s is not TLS
    if (destroy) {
      client.reset();
    } else {
      client->close();
    }
    ASSERT_TRUE(run_until([&] { return calls > 0; }));
    run_until([] { return false; }, 0ms);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(hs->error().code, asio::error::operation_aborted);
  }
}

TEST_F(Tls, MisuseFailsWithoutTouchingTheConnection) {
  auto p = make_pair(context(server_options()), context(client_options()));
  std::optional<platform::Result<void>> wr;
  p.client->async_write(asio::buffer("x", 1), [&](auto r) { wr = r; });
  ASSERT_TRUE(run_until([&] { return wr.has_value(); }));
  EXPECT_EQ(wr->error().code, std::errc::not_connected);
  auto h = handshake(p);
  EXPECT_TRUE(*h.server && *h.client);
  std::optional<platform::Result<void>> again;
  p.client->async_handshake([&](auto r) { again = r; });
  ASSERT_TRUE(run_until([&] { return again.has_value(); }));
  EXPECT_EQ(again->error().code, std::errc::operation_in_progress);
  p.client->close();
  p.server->close();
}

TEST_F(Tls, CreateRefusesMismatchedKeyAndMissingServerName) {
  TlsOptions wrong_key = client_options();
  wrong_key.key = pki_->server.key();
  auto a = TlsContext::create(std::move(wrong_key));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, std::errc::invalid_argument);
  EXPECT_THAT(a.error().message(), HasSubstr("does not belong to certificate"));

  auto b = TlsContext::create(client_options(""));
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, std::errc::invalid_argument);
  EXPECT_THAT(b.error().message(), HasSubstr("server_name is empty"));
}

}  // namespace
}  // namespace gridnode::crypto
