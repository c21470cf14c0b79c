#pragma once

// The project's one HTTP/1.1 server (DESIGN.md): the agent's scrape endpoint and the
// collector's capacity view. It runs on the caller's io_context (one thread), parses requests
// with http-parser (libhttp-parser-dev), serves plain TCP or TLS (crypto::TlsStream), keeps
// connections alive (Prometheus scrapes over one), and bounds what a hostile client can do:
// request line and header size, time to send a request (slowloris), connections, methods.
// The handler answers from state it already holds; it never waits.

// clang-format off
#include <cstddef>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
// clang-format on
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gridnode/platform/result.hpp"

namespace gridnode::crypto {
class TlsContext;
}

namespace gridnode::http {

struct Header {
  std::string name;  // as received; compare case-insensitively (Request::header does)
  std::string value;
};

struct Request {
  std::string method;  // "GET", "HEAD", … (others are refused before the handler: 405)
  std::string path;    // the target's path, percent-decoded ("/metrics")
  std::string query;   // the raw query after '?', "" when none
  std::vector<Header> headers;
  std::string remote;  // "127.0.0.1:40000", "[::1]:40000"
  bool tls = false;

  // The first header of that name (case-insensitive), "" when absent.
  std::string_view header(std::string_view name) const;
  // The query's parameters in order, names and values percent-decoded ('+' is a space);
  // repeated names are kept ("collect[]=hwmon&collect[]=nvml").
  std::vector<std::pair<std::string, std::string>> params() const;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Sent instead of `body` when set: a buffer the handler keeps and refills (the agent's
  // rendered exposition), written from where it lies, without a copy. The server holds this
  // reference until the response's last byte is written, so a handler refills it only when it
  // is the last owner (use_count() == 1) and takes a fresh one otherwise.
  std::shared_ptr<const std::string> shared_body{};
  std::vector<Header> headers;  // more headers (WWW-Authenticate, Content-Encoding, …)

  std::string_view body_view() const { return shared_body ? *shared_body : body; }
};

// Runs on the loop, once per request; fills `response`. For HEAD the server sends the headers
// of what the handler produced, without the body.
using Handler = std::function<void(const Request& request, Response& response)>;

struct Limits {
  std::size_t max_request_line = 8192;   // method, target and version (414 beyond)
  std::size_t max_header_bytes = 16384;  // every header line together (431 beyond)
  std::size_t max_headers = 100;
  std::size_t max_body = 0;                            // GET/HEAD: a body is refused (413)
  // To a request's last byte: from the connection (TLS handshake included), or on a kept
  // connection from its next request's first byte (the wait for that byte is idle_timeout).
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds idle_timeout{120000};      // between requests on a kept connection
  std::chrono::milliseconds write_timeout{30000};      // a response's last byte
  std::size_t max_connections = 64;                    // more are closed at once, and logged
};

struct ServerOptions {
  // "HOST:PORT", ":PORT" (every address), "[::1]:PORT"; port 0 picks one (local_endpoints()).
  std::vector<std::string> listen;
  Limits limits;
  std::vector<std::string> methods{"GET", "HEAD"};  // anything else: 405
  std::string component = "http";                  // the log lines' component
  // Null: plain HTTP. Otherwise every connection is TLS with this context (a handshake
  // failure is logged and the connection closed).
  std::shared_ptr<crypto::TlsContext> tls{};
  // Checks a request before the handler (basic auth): returns true to let it through, or
  // fills `response` (401 with WWW-Authenticate) and returns false. Empty: everyone.
  std::function<bool(const Request&, Response&)> authorize{};
  // Added to every response (exporter-toolkit's http_server_config.headers).
  std::vector<Header> extra_headers{};
};

// Counters for the owner's metrics.
struct ServerStats {
  std::uint64_t requests = 0;
  std::uint64_t refused_connections = 0;   // over max_connections
  std::uint64_t bad_requests = 0;          // malformed, too large, too slow, wrong method
  std::uint64_t tls_handshake_failures = 0;
  std::uint64_t unauthorized = 0;
  std::size_t open_connections = 0;
};

class Server {
 public:
  // Binds every listen address (fails with the address named when one cannot be bound) and
  // starts accepting on `io`.
  [[nodiscard]] static platform::Result<std::unique_ptr<Server>> make(asio::io_context& io,
                                                                      ServerOptions options,
                                                                      Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound endpoints, in the order of options.listen.
  std::vector<asio::ip::tcp::endpoint> local_endpoints() const;

  // For new connections from now on (SIGHUP reload): TLS, authorization and extra headers.
  // The listening sockets and open connections stay.
  void reconfigure(std::shared_ptr<crypto::TlsContext> tls,
                   std::function<bool(const Request&, Response&)> authorize,
                   std::vector<Header> extra_headers);

  // Stops accepting and closes every connection (their handlers end aborted).
  void close();

  const ServerStats& stats() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// gzip (RFC 1952) of `in` into `out` (replaced), for `Accept-Encoding: gzip`. Reuses one
// deflate state per thread, so a scrape allocates no compressor; `out` grows in steps from its
// capacity, so an `out` kept between calls is reused, and no buffer of the input's size (zlib's
// deflateBound) is ever taken for an output about a tenth of it.
[[nodiscard]] platform::Result<void> gzip(std::string_view in, std::string& out);

// True when an Accept-Encoding header value accepts gzip (q > 0).
bool accepts_gzip(std::string_view accept_encoding);

}  // namespace gridnode::http
