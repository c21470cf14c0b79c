// http::Server over real sockets on loopback (IPv4 and IPv6), with a client written here that
// sends what well-behaved clients send and what hostile ones do.

#include <gtest/gtest.h>

#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "http_test_client.hpp"

namespace gridnode::http {
namespace {

using namespace std::chrono_literals;
using test::Client;
using test::Reply;
using test::Running;
using tcp = asio::ip::tcp;

void handler(const Request& req, Response& resp) {
  if (req.path == "/") {
    resp.body = "hello\n";
  } else if (req.path == "/echo") {
    resp.body = req.method + " " + req.path + " remote=" + (req.remote.empty() ? "no" : "yes") +
                "\n";
    for (const auto& [k, v] : req.params()) {
      resp.body += k + "=" + v + "\n";
    }
    resp.body += "x-test=" + std::string(req.header("x-TEST")) + "\n";
  } else if (req.path == "/big") {
    resp.body.assign(300000, 'x');
  } else if (req.path == "/shared") {  // a handler's kept buffer, sent without a copy
    static const auto kept = std::make_shared<const std::string>(200000, 's');
    resp.shared_body = kept;
    resp.body = "ignored";
  } else {
    resp.status = 404;
    resp.body = "not found\n";
  }
}

ServerOptions options(std::vector<std::string> listen = {"127.0.0.1:0"}) {
  ServerOptions o;
  o.listen = std::move(listen);
  o.component = "http-test";
  return o;
}

// After whatever a test did, a fresh client is answered.
void expect_answers(Running& srv) {
  Client c(srv.endpoint());
  EXPECT_EQ(c.get("/").status, 200);
}

TEST(HttpServer, GetHeadAndNotFound) {
  Running srv(options(), handler);
  Client c(srv.endpoint());
  ASSERT_TRUE(c.connected());
  Reply r = c.get("/");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello\n");
  EXPECT_EQ(r.header("Content-Length"), "6");
  EXPECT_EQ(r.header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_TRUE(std::regex_match(std::string(r.header("Date")),
                               std::regex("(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
                                          "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                                          "20[0-9][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT")))
      << r.header("Date");
  EXPECT_EQ(r.header("Connection"), "");  // HTTP/1.1: kept open

  r = c.get("/shared");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header("Content-Length"), "200000");
  EXPECT_EQ(r.body, std::string(200000, 's'));
  c.send("HEAD /shared HTTP/1.1\r\nHost: t\r\n\r\n");
  r = c.read(/*head=*/true);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header("Content-Length"), "200000");
  EXPECT_TRUE(r.body.empty());

  c.send("HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n");
  r = c.read(/*head=*/true);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header("Content-Length"), "300000");
  EXPECT_TRUE(r.body.empty());

  r = c.get("/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "not found\n");
  EXPECT_TRUE(c.buffered().empty()) << "HEAD sent a body";
  EXPECT_EQ(srv.stats().requests, 5u);
}

TEST(HttpServer, KeepAliveCarriesManyRequestsOnOneConnection) {
  Running srv(options(), handler);
  Client c(srv.endpoint());
  for (int i = 0; i < 50; ++i) {
    Reply r = c.get(i % 2 ? "/big" : "/");
    ASSERT_TRUE(r.ok) << i;
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body.size(), i % 2 ? 300000u : 6u);
  }
  auto st = srv.stats();
  EXPECT_EQ(st.requests, 50u);
  EXPECT_EQ(st.open_connections, 1u);
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  Running srv(options(), handler);
  Client c(srv.endpoint());
  std::string all;
  for (int i = 0; i < 20; ++i) {
    all += "GET /echo?n=" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
  }
  ASSERT_TRUE(c.send(all));
  for (int i = 0; i < 20; ++i) {
    Reply r = c.read();
    ASSERT_TRUE(r.ok) << i;
    EXPECT_NE(r.body.find("n=" + std::to_string(i) + "\n"), std::string::npos) << r.body;
  }
  // The last one asks to close: answered, then closed.
  c.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  Reply r = c.read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_TRUE(c.buffered().empty()) << "answered after Connection: close: " << c.buffered();
}

TEST(HttpServer, RequestSplitIntoSingleBytes) {
  Running srv(options(), handler);
  Client c(srv.endpoint());
  const std::string req = "GET /echo?a=1 HTTP/1.1\r\nX-Test: split\r\n\r\n";
  for (char ch : req) {
    ASSERT_TRUE(c.send(std::string(1, ch)));
  }
  Reply r = c.read();
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.body, "GET /echo remote=yes\na=1\nx-test=split\n");
}

TEST(HttpServer, QueryParametersKeepRepeatedNamesAndDecode) {
  Running srv(options(), handler);
  Client c(srv.endpoint());
  Reply r = c.get("/echo?collect[]=hwmon&collect[]=nvml&x=a%20b+c&empty&=v&%zz=1");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.body,
            "GET /echo remote=yes\ncollect[]=hwmon\ncollect[]=nvml\nx=a b c\nempty=\n=v\n%zz=1\n"
            "x-test=\n");
  r = c.get("/%65cho?a=%2F");  // the path is decoded too
  EXPECT_EQ(r.body, "GET /echo remote=yes\na=/\nx-test=\n");
}

TEST(HttpServer, Http10ClosesUnlessKeepAliveIsAsked) {
  Running srv(options(), handler);
  {
    Client c(srv.endpoint());
    c.send("GET / HTTP/1.0\r\n\r\n");
    Reply r = c.read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
  }
  Client c(srv.endpoint());
  c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  Reply r = c.read();
  EXPECT_EQ(r.header("Connection"), "keep-alive");
  c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(c.read().status, 200);
}

TEST(HttpServer, ListensOnIpv6AndOnEveryAddress) {
  Running srv(options({"[::1]:0", ":0"}), handler);
  const auto v6 = srv.endpoint(0);
  EXPECT_TRUE(v6.address().is_v6());
  Client c6(v6);
  if (!c6.connected()) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  EXPECT_EQ(c6.get("/").status, 200);
  // ":0" takes IPv4 and IPv6 on one port.
  const unsigned short port = srv.endpoint(1).port();
  Client c4(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  EXPECT_EQ(c4.get("/").status, 200);
  Client c6b(tcp::endpoint(asio::ip::make_address("::1"), port));
  EXPECT_EQ(c6b.get("/").status, 200);
}

TEST(HttpServer, BadListenAddressesAreNamed) {
  asio::io_context io;
  for (const char* bad : {"nocolon", "127.0.0.1:99999", "127.0.0.1:x", "no.such.host.invalid:1"}) {
    auto s = Server::make(io, options({bad}), handler);
    ASSERT_FALSE(s) << bad;
    EXPECT_NE(s.error().message().find(bad), std::string::npos) << s.error().message();
  }
  // A port taken: the second bind fails with the address named.
  Running srv(options(), handler);
  const std::string taken = "127.0.0.1:" + std::to_string(srv.endpoint().port());
  auto s = Server::make(io, options({taken}), handler);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find(taken), std::string::npos);
}

TEST(HttpServer, OtherMethodsGet405WithAllow) {
  Running srv(options(), handler);
  Client c(srv.endpoint());
  c.send("POST / HTTP/1.1\r\nContent-Length: 100000000\r\n\r\nabc");
  Reply r = c.read();
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("Allow"), "GET, HEAD");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(srv.stats().bad_requests, 1u);
}

TEST(HttpServer, OversizedRequestLineAndHeadersAreRefused) {
  ServerOptions o = options();
  o.limits.max_request_line = 1024;
  o.limits.max_header_bytes = 2048;
  o.limits.max_headers = 10;
  Running srv(o, handler);
  {
    Client c(srv.endpoint());
    c.send("GET /" + std::string(5000, 'a') + " HTTP/1.1\r\n\r\n");
    Reply r = c.read();
    EXPECT_EQ(r.status, 414);
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    Client c(srv.endpoint());
    c.send("GET / HTTP/1.1\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n");
    EXPECT_EQ(c.read().status, 431);
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    Client c(srv.endpoint());
    std::string many = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 11; ++i) {
      many += "X-" + std::to_string(i) + ": v\r\n";
    }
    c.send(many + "\r\n");
    EXPECT_EQ(c.read().status, 431);
  }
  {
    // A header without end, sent in pieces: refused once past the limit, not held.
    Client c(srv.endpoint());
    c.send("GET / HTTP/1.1\r\nX-Endless: ");
    bool refused = false;
    for (int i = 0; i < 100 && !refused; ++i) {
      refused = !c.send(std::string(1000, 'z'));
    }
    Reply r = c.read();
    EXPECT_EQ(r.status, 431);
  }
  {
    Client c(srv.endpoint());
    c.send("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    EXPECT_EQ(c.read().status, 413);
  }
  {
    Client c(srv.endpoint());
    c.send("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    EXPECT_EQ(c.read().status, 413);
  }
  EXPECT_EQ(srv.stats().bad_requests, 6u);
  expect_answers(srv);
}

TEST(HttpServer, GarbageAndNonOriginTargetsGet400) {
  Running srv(options(), handler);
  const std::vector<std::string> garbage = {
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),  // a TLS ClientHello
      std::string("\0\0\0\0GET", 7),
      "GET http://example.com/ HTTP/1.1\r\n\r\n",
      "GET * HTTP/1.1\r\n\r\n",
      "GET / HTTP/2.0\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
  };
  for (const std::string& g : garbage) {
    Client c(srv.endpoint());
    c.send(g);
    Reply r = c.read();
    ASSERT_TRUE(r.ok) << g;
    EXPECT_GE(r.status, 400) << g;
    EXPECT_LT(r.status, 506) << g;
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(c.closed_by_server()) << g;
  }
  EXPECT_EQ(srv.stats().bad_requests, garbage.size());
  EXPECT_EQ(srv.stats().requests, 0u);
  expect_answers(srv);
}

TEST(HttpServer, SlowlorisIsClosedAfterRequestTimeout) {
  ServerOptions o = options();
  o.limits.request_timeout = 300ms;
  Running srv(o, handler);
  Client slow(srv.endpoint());
  const auto start = std::chrono::steady_clock::now();
  bool cut = false;
  // A byte every 50 ms: the request never completes in time, however steady the trickle.
  const std::string req = "GET / HTTP/1.1\r\nX-Slow: " + std::string(200, 's');
  for (char ch : req) {
    if (!slow.send(std::string(1, ch))) {
      cut = true;
      break;
    }
    std::this_thread::sleep_for(50ms);
    if (std::chrono::steady_clock::now() - start > 2s) {
      break;
    }
  }
  EXPECT_TRUE(cut || slow.closed_by_server());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  // A connection that sends nothing at all is closed too.
  Client silent(srv.endpoint());
  EXPECT_TRUE(silent.closed_by_server());
  EXPECT_EQ(srv.stats().bad_requests, 2u);
  expect_answers(srv);
}

TEST(HttpServer, IdleKeptConnectionIsClosedQuietly) {
  ServerOptions o = options();
  o.limits.idle_timeout = 200ms;
  Running srv(o, handler);
  Client c(srv.endpoint());
  EXPECT_EQ(c.get("/").status, 200);
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(srv.stats().bad_requests, 0u);
}

TEST(HttpServer, ConnectionsBeyondTheLimitAreClosedAtOnce) {
  ServerOptions o = options();
  o.limits.max_connections = 4;
  Running srv(o, handler);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<Client>(srv.endpoint()));
    ASSERT_EQ(held.back()->get("/").status, 200);  // accepted and counted
  }
  for (int i = 0; i < 10; ++i) {
    Client extra(srv.endpoint(), 2s);
    EXPECT_TRUE(extra.closed_by_server()) << i;
  }
  auto st = srv.stats();
  EXPECT_EQ(st.refused_connections, 10u);
  EXPECT_EQ(st.open_connections, 4u);
  held.clear();
  // Freed slots are taken again (the server sees the closes shortly).
  for (int tries = 0; tries < 100 && srv.stats().open_connections > 0; ++tries) {
    std::this_thread::sleep_for(10ms);
  }
  expect_answers(srv);
}

TEST(HttpServer, PeerHangingUpMidRequestOrMidResponse) {
  Running srv(options(), handler);
  for (int i = 0; i < 20; ++i) {
    Client c(srv.endpoint());
    c.send(i % 2 ? "GET /big HTTP/1.1\r\n\r\n" : "GET / HTTP/1.1\r\nHost: ha");
    asio::error_code ignored;
    if (i % 4 == 1) {  // a reset rather than a FIN
      c.socket().set_option(asio::socket_base::linger(true, 0), ignored);
    }
    c.socket().close(ignored);
  }
  // Accepts are in order: once this one is answered, the server has seen all the others.
  Client probe(srv.endpoint());
  EXPECT_EQ(probe.get("/").status, 200);
  for (int tries = 0; tries < 300 && srv.stats().open_connections > 1; ++tries) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(srv.stats().open_connections, 1u);  // the probe's alone
}

TEST(HttpServer, AuthorizeRunsFirstAndExtraHeadersGoEverywhere) {
  ServerOptions o = options();
  o.authorize = [](const Request& req, Response& resp) {
    if (req.header("Authorization") == "Basic dTpw") {
      return true;
    }
    resp.status = 401;
    resp.body = "unauthorized\n";
    resp.headers.push_back({"WWW-Authenticate", "Basic"});
    return false;
  };
  o.extra_headers = {{"X-Frame-Options", "deny"}, {"Bad\r\nHeader", "x"}};
  Running srv(o, handler);
  Client c(srv.endpoint());
  Reply r = c.get("/");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("WWW-Authenticate"), "Basic");
  EXPECT_EQ(r.header("X-Frame-Options"), "deny");
  EXPECT_EQ(r.head.find("Bad"), std::string::npos);
  r = c.get("/", "Authorization: Basic dTpw\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("X-Frame-Options"), "deny");
  EXPECT_EQ(srv.stats().unauthorized, 1u);

  // reconfigure(): for new connections; the open one keeps what it started with.
  srv.on_loop([&srv] {
    srv.server().reconfigure(nullptr, {}, {{"X-New", "1"}});
    return 0;
  });
  EXPECT_EQ(c.get("/").status, 401);
  Client fresh(srv.endpoint());
  r = fresh.get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("X-New"), "1");
  EXPECT_EQ(r.header("X-Frame-Options"), "");
}

TEST(HttpServer, CloseEndsOpenConnections) {
  asio::io_context io;
  auto s = Server::make(io, options(), handler);
  ASSERT_TRUE(s);
  Client idle((*s)->local_endpoints()[0]);
  Client partial((*s)->local_endpoints()[0]);
  partial.send("GET / HT");
  io.run_for(100ms);
  EXPECT_EQ((*s)->stats().open_connections, 2u);
  (*s)->close();
  io.run_for(100ms);
  EXPECT_EQ((*s)->stats().open_connections, 0u);
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_TRUE(partial.closed_by_server());
}

}  // namespace
}  // namespace gridnode::http
