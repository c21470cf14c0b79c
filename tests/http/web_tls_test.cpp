// The web endpoint's TLS (crypto::TlsContext::create_web_server, through read_web_config and
// make_tls_context): a TlsStream server on 127.0.0.1 against `openssl s_client`, for each
// client_auth_type with no client certificate, one from the client CA and one from another CA,
// and for RSA and ECDSA server certificates. Certificates are made by the openssl command.

// clang-format off
#include <cstddef>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
// clang-format on
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <future>
#include <optional>
#include <string>

#include "../crypto/crypto_test_util.hpp"
#include "gridnode/crypto/tls.hpp"
#include "gridnode/http/web_config.hpp"
#include "temp_dir.hpp"

namespace gridnode::http {
namespace {

using ::testing::HasSubstr;
using asio::ip::tcp;
using namespace std::chrono_literals;
namespace test = crypto::test;

std::string q(const std::string& s) { return test::shell_quote(s); }

// One TlsStream server for one s_client: handshake, then reads until the client closes.
struct Peer {
  tcp::acceptor acceptor;
  std::unique_ptr<crypto::TlsStream> stream;
  std::optional<platform::Result<void>> handshake;
  std::string received;
  bool read_done = false;
  std::array<char, 256> buf{};

  Peer(asio::io_context& io, std::shared_ptr<crypto::TlsContext> ctx)
      : acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    acceptor.async_accept([this, ctx](std::error_code ec, tcp::socket socket) {
      ASSERT_FALSE(ec) << ec.message();
      stream = std::make_unique<crypto::TlsStream>(ctx, std::move(socket));
      stream->async_handshake([this](platform::Result<void> r) {
        handshake = r;
        if (r) {
          read();
        }
      });
    });
  }
  void read() {
    stream->async_read_some(asio::buffer(buf), [this](platform::Result<std::size_t> n) {
      if (!n) {
        read_done = true;
        return;
      }
      received.append(buf.data(), *n);
      read();
    });
  }
  std::string port() const { return std::to_string(acceptor.local_endpoint().port()); }
};

struct Outcome {
  platform::Result<void> server;
  test::CommandResult client;
  std::string suite;
  std::string peer_cn;
  std::string received;
};

class WebTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_openssl()) {
      return;
    }
    dir_ = new testing::TempDir();
    const testing::TempDir& d = *dir_;
    auto ca = [&](const std::string& name) {
      test::openssl("ecparam -name prime256v1 -genkey -noout -out " + q(d / (name + ".key")));
      test::openssl("req -x509 -new -key " + q(d / (name + ".key")) + " -subj /CN=" + name +
                    " -days 30 -out " + q(d / (name + ".crt")));
    };
    // `keyopt`: the openssl req -newkey argument (ec or rsa); `ext`: extensions of the leaf.
    auto leaf = [&](const std::string& name, const std::string& issuer, const std::string& keyopt,
                    const std::string& ext) {
      const std::string key = d / (name + ".key"), csr = d / (name + ".csr"),
                        crt = d / (name + ".crt"), extfile = d / (name + ".ext");
      test::write_text(extfile, ext + "\n");
      test::openssl("req -new -newkey " + keyopt + " -nodes -keyout " + q(key) + " -subj /CN=" +
                    name + " -out " + q(csr));
      test::openssl("x509 -req -in " + q(csr) + " -CA " + q(d / (issuer + ".crt")) + " -CAkey " +
                    q(d / (issuer + ".key")) + " -CAcreateserial -sha256 -days 30 -extfile " +
                    q(extfile) + " -out " + q(crt));
    };
    ca("web-ca");
    ca("client-ca");
    ca("other-ca");
    const std::string server_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    leaf("server-ec", "web-ca", "ec -pkeyopt ec_paramgen_curve:prime256v1", server_ext);
    leaf("server-rsa", "web-ca", "rsa:2048", server_ext);
    leaf("client", "client-ca", "ec -pkeyopt ec_paramgen_curve:prime256v1",
         "extendedKeyUsage=clientAuth");
    leaf("client-rsa", "client-ca", "rsa:2048", "extendedKeyUsage=clientAuth");
    leaf("stranger", "other-ca", "ec -pkeyopt ec_paramgen_curve:prime256v1",
         "extendedKeyUsage=clientAuth");
    // Intermediates: web-ca -> web-int -> server-int, client-ca -> client-int -> client-deep.
    const std::string int_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign";
    leaf("web-int", "web-ca", "ec -pkeyopt ec_paramgen_curve:prime256v1", int_ext);
    leaf("server-int", "web-int", "rsa:2048", server_ext);
    leaf("client-int", "client-ca", "ec -pkeyopt ec_paramgen_curve:prime256v1", int_ext);
    leaf("client-deep", "client-int", "ec -pkeyopt ec_paramgen_curve:prime256v1",
         "extendedKeyUsage=clientAuth");
    // cert_file as operators often have it: the leaf, then its intermediate.
    test::write_text(d / "server-chain.crt", test::read_text(d / "server-int.crt") +
                                                 test::read_text(d / "web-int.crt"));
    test::write_text(d / "server-chain.key", test::read_text(d / "server-int.key"));
    // One file holding both the certificate and its key, named by cert_file and key_file.
    test::write_text(d / "combined.pem", test::read_text(d / "server-ec.crt") +
                                             test::read_text(d / "server-ec.key"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { GRIDNODE_REQUIRE_OPENSSL(); }

  static std::string path(const std::string& rel) { return *dir_ / rel; }

  // A web config file for `server` (server-ec, server-rsa; combined.pem) with `extra` lines in
  // tls_server_config, read and turned into a context.
  platform::Result<std::shared_ptr<crypto::TlsContext>> context(const std::string& server,
                                                                 const std::string& extra) {
    const std::string file = path("web-" + std::to_string(++files_) + ".yml");
    // A name with a suffix is one file holding both.
    const bool one_file = server.find('.') != std::string::npos;
    const std::string cert = one_file ? server : server + ".crt";
    const std::string key = one_file ? server : server + ".key";
    test::write_text(file, "tls_server_config:\n  cert_file: " + cert + "\n  key_file: " + key +
                               "\n" + extra);
    auto config = read_web_config(file);
    if (!config) {
      return tl::unexpected(config.error());
    }
    EXPECT_TRUE(config->tls);
    return make_tls_context(*config->tls);
  }

  // `client`: "" for no certificate, else the name of a client key pair.
  Outcome connect(const std::shared_ptr<crypto::TlsContext>& ctx, const std::string& client,
                  const std::string& args = "-tls1_2") {
    Peer peer(io_, ctx);
    std::string cmd = "printf hello | timeout 20 openssl s_client -brief -connect 127.0.0.1:" +
                      peer.port() + " -servername localhost -verify_return_error -CAfile " +
                      q(path("web-ca.crt")) + " " + args;
    if (!client.empty()) {
      cmd += " -cert " + q(path(client + ".crt")) + " -key " + q(path(client + ".key"));
    }
    auto future = std::async(std::launch::async, [cmd] { return test::run_command(cmd); });
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline &&
           !(future.wait_for(0s) == std::future_status::ready && peer.handshake &&
             (!*peer.handshake || peer.read_done))) {
      io_.restart();
      io_.run_for(20ms);
    }
    Outcome out{peer.handshake.value_or(platform::fail(std::errc::timed_out, "no handshake")),
                future.get(), "", "", peer.received};
    if (peer.stream) {
      if (out.server) {
        out.suite = peer.stream->ciphersuite();
        out.peer_cn = peer.stream->peer_common_name();
      }
      peer.stream->close();
    }
    io_.restart();
    io_.run_for(10ms);
    return out;
  }

  void expect_ok(const Outcome& o, const std::string& cn) {
    ASSERT_TRUE(o.server) << o.server.error().message() << "\n" << o.client.output;
    EXPECT_EQ(o.received, "hello");
    EXPECT_EQ(o.peer_cn, cn);
    EXPECT_THAT(o.client.output, HasSubstr("Protocol version: TLSv1.2"));
  }
  void expect_refused(const Outcome& o, const std::string& why) {
    ASSERT_FALSE(o.server) << o.client.output;
    EXPECT_THAT(o.server.error().message(), HasSubstr(why));
    EXPECT_TRUE(o.received.empty());
    EXPECT_NE(o.client.status, 0) << o.client.output;
    // Refused before our Finished, with an alert that says why.
    EXPECT_THAT(o.client.output, HasSubstr("alert")) << o.client.output;
  }

  static testing::TempDir* dir_;
  asio::io_context io_{1};
  int files_ = 0;
};

testing::TempDir* WebTls::dir_ = nullptr;

TEST_F(WebTls, EcdsaAndRsaServerCertificatesWithoutClientAuth) {
  // {server certificate, s_client arguments, the suite agreed}; "server-chain" has its
  // intermediate in cert_file, and the client trusts only the root.
  const std::array<std::array<std::string, 3>, 4> cases{{
      {"server-ec", "-tls1_2", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"},
      {"server-rsa", "-tls1_2", "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"},
      {"server-rsa", "-tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305",
       "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256"},
      {"server-chain", "-tls1_2", "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"},
  }};
  for (const auto& [server, args, suite] : cases) {
    SCOPED_TRACE(server + " " + args);
    auto ctx = context(server, "");
    ASSERT_TRUE(ctx) << ctx.error().message();
    Outcome o = connect(*ctx, "", args);
    expect_ok(o, "");
    EXPECT_EQ(o.suite, suite);
  }
  // Not asked for, so not sent: a client with a certificate is served as one without.
  auto rsa = context("server-rsa", "");
  ASSERT_TRUE(rsa) << rsa.error().message();
  expect_ok(connect(*rsa, "client"), "");
}

TEST_F(WebTls, CombinedFilesAndClientChains) {
  auto combined = context("combined.pem", "");
  ASSERT_TRUE(combined) << combined.error().message();
  expect_ok(connect(*combined, ""), "");

  // A client whose certificate comes from an intermediate of client_ca_file's root sends the
  // intermediate along; the root alone in client_ca_file is enough.
  auto verify = context("server-ec",
                        "  client_auth_type: RequireAndVerifyClientCert\n"
                        "  client_ca_file: client-ca.crt\n");
  ASSERT_TRUE(verify) << verify.error().message();
  expect_ok(connect(*verify, "client-deep", "-tls1_2 -cert_chain " + q(path("client-int.crt"))),
            "client-deep");
  expect_refused(connect(*verify, "client-deep"), "not issued by client_ca_file");
}

TEST_F(WebTls, WhatTheServerRefuses) {
  auto rsa = context("server-rsa", "");
  ASSERT_TRUE(rsa) << rsa.error().message();
  for (const char* args : {"-tls1_3", "-tls1_2 -cipher AES128-GCM-SHA256",
                           "-tls1_2 -cipher ECDHE-RSA-AES128-SHA256", "-tls1_1"}) {
    SCOPED_TRACE(args);
    Outcome o = connect(*rsa, "", args);
    EXPECT_FALSE(o.server) << o.client.output;
    EXPECT_NE(o.client.status, 0);
  }
}

TEST_F(WebTls, RequestClientCertTakesAnyCertificateOrNone) {
  auto ctx = context("server-ec", "  client_auth_type: RequestClientCert\n");
  ASSERT_TRUE(ctx) << ctx.error().message();
  expect_ok(connect(*ctx, ""), "");
  expect_ok(connect(*ctx, "client"), "client");
  expect_ok(connect(*ctx, "stranger"), "stranger");
}

TEST_F(WebTls, RequireAnyClientCertNeedsOneButDoesNotVerifyIt) {
  auto ctx = context("server-ec", "  client_auth_type: RequireAnyClientCert\n");
  ASSERT_TRUE(ctx) << ctx.error().message();
  expect_refused(connect(*ctx, ""),
                 "the client sent no certificate (client_auth_type RequireAnyClientCert)");
  expect_ok(connect(*ctx, "stranger"), "stranger");
  expect_ok(connect(*ctx, "client-rsa"), "client-rsa");
}

TEST_F(WebTls, VerifyClientCertIfGivenVerifiesWhatIsSent) {
  auto ctx = context("server-rsa",
                     "  client_auth_type: VerifyClientCertIfGiven\n"
                     "  client_ca_file: client-ca.crt\n");
  ASSERT_TRUE(ctx) << ctx.error().message();
  expect_ok(connect(*ctx, ""), "");
  expect_ok(connect(*ctx, "client"), "client");
  expect_refused(connect(*ctx, "stranger"),
                 "the client's certificate was refused (client_auth_type "
                 "VerifyClientCertIfGiven): not issued by client_ca_file " +
                     path("client-ca.crt"));
}

TEST_F(WebTls, RequireAndVerifyClientCert) {
  auto ctx = context("server-ec",
                     "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: "
                     "client-ca.crt\n");
  ASSERT_TRUE(ctx) << ctx.error().message();
  expect_refused(connect(*ctx, ""),
                 "the client sent no certificate (client_auth_type RequireAndVerifyClientCert)");
  expect_ok(connect(*ctx, "client"), "client");
  expect_ok(connect(*ctx, "client-rsa"), "client-rsa");
  expect_refused(connect(*ctx, "stranger"), "not issued by client_ca_file");
}

// exporter-toolkit itself (Prometheus' `promtool check web-config`) judges the same files: where
// it accepts, we accept, and where it refuses, we refuse, except for the few things we cannot
// do (docs/web.md), which only we refuse.
TEST_F(WebTls, PromtoolCheckWebConfigAgrees) {
  if (test::run_command("promtool --version").status != 0) {
    GTEST_SKIP() << "promtool (Debian package prometheus) is not installed";
  }
  const std::string tls =
      "tls_server_config:\n  cert_file: server-ec.crt\n  key_file: server-ec.key\n";
  const std::string ca = "  client_ca_file: client-ca.crt\n";
  const std::string carol =
      "basic_auth_users:\n  carol: $2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu\n";
  struct Case {
    std::string text;
    bool theirs;  // promtool accepts
    bool ours;    // read_web_config and make_tls_context accept
  };
  const Case cases[] = {
      {"", true, true},
      {carol, true, true},
      {tls, true, true},
      {"tls_server_config:\n  cert_file: server-rsa.crt\n  key_file: server-rsa.key\n", true, true},
      {tls + "  client_auth_type: RequestClientCert\n", true, true},
      {tls + "  client_auth_type: RequireClientCert\n", true, true},
      {tls + "  client_auth_type: VerifyClientCertIfGiven\n" + ca, true, true},
      {tls + "  client_auth_type: RequireAndVerifyClientCert\n" + ca + carol, true, true},
      {tls + "  min_version: TLS10\n  max_version: TLS13\n", true, true},
      {tls + "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n", true,
       true},
      {"http_server_config:\n  headers:\n    X-Powered-By: gridnode\n", false, false},
      {"http_server_config:\n  headers:\n    X-Frame-Options: allow\n", false, false},
      {"basic_auth_users:\n  alice: plaintext\n", false, false},
      {"tls_server_config:\n  cert_file: server-ec.crt\n", false, false},
      {tls + ca, false, false},  // a client CA without a client auth type
      {tls + "  client_auth_type: Sometimes\n", false, false},
      {tls + "  certfile: x\n", false, false},
      {"rate_limiter: {}\n", false, false},
      // Newer exporter-toolkits than promtool 2.42's have rate_limit; we refuse it.
      {"rate_limit:\n  burst: 5\n  interval: 1s\n", false, false},
      {"tls_server_config:\n  cert_file: server-ec.crt\n  key_file: server-rsa.key\n", false,
       false},
      {"tls_server_config:\n  cert_file: missing.crt\n  key_file: server-ec.key\n", false, false},
      // Only we refuse: what mbedTLS 2.28 or this agent cannot do.
      {tls + "  min_version: TLS13\n", true, false},
      {tls + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n", true, false},
      {tls + "  curve_preferences: [X25519]\n", true, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string file = path("check-" + std::to_string(++files_) + ".yml");
    test::write_text(file, c.text);
    const test::CommandResult theirs = test::run_command("promtool check web-config " + q(file));
    EXPECT_EQ(theirs.status == 0, c.theirs) << theirs.output;
    auto config = read_web_config(file);
    bool ours = config.has_value();
    std::string why = config ? "" : config.error().message();
    if (config && config->tls) {
      auto ctx = make_tls_context(*config->tls);
      ours = ctx.has_value();
      why = ctx ? "" : ctx.error().message();
    }
    EXPECT_EQ(ours, c.ours) << why;
  }
}

TEST_F(WebTls, LoadErrorsAreClear) {
  auto tls13 = context("server-ec", "  min_version: TLS13\n");
  ASSERT_FALSE(tls13);
  EXPECT_THAT(tls13.error().message(), HasSubstr("min_version TLS13 cannot be met"));
  // A floor below 1.2 is met by 1.2.
  auto tls10 = context("server-ec", "  min_version: TLS10\n");
  ASSERT_TRUE(tls10) << tls10.error().message();
  expect_ok(connect(*tls10, ""), "");

  test::write_text(path("mismatch.crt"), test::read_text(path("server-ec.crt")));
  test::write_text(path("mismatch.key"), test::read_text(path("server-rsa.key")));
  auto mismatch = context("mismatch", "");
  ASSERT_FALSE(mismatch);
  EXPECT_THAT(mismatch.error().message(),
              HasSubstr("the private key does not belong to certificate \"CN=server-ec\""));

  test::write_text(path("garbage.crt"), "not a certificate\n");
  test::write_text(path("garbage.key"), test::read_text(path("server-ec.key")));
  auto garbage = context("garbage", "");
  ASSERT_FALSE(garbage);
  EXPECT_THAT(garbage.error().message(), HasSubstr("the certificate (chain) cannot be parsed"));
  EXPECT_THAT(garbage.error().message(), HasSubstr(path("garbage.crt")));

  test::openssl("pkey -in " + q(path("server-ec.key")) + " -aes128 -passout pass:pw -out " +
                q(path("locked.key")));
  test::write_text(path("locked.crt"), test::read_text(path("server-ec.crt")));
  auto locked = context("locked", "");
  ASSERT_FALSE(locked);
  EXPECT_THAT(locked.error().message(), HasSubstr("the private key is encrypted"));
}

}  // namespace
}  // namespace gridnode::http
