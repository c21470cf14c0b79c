#pragma once

// The agent as a node_exporter drop-in scrape target: node_exporter's --web.* flags and
// exporter-toolkit's web config on the project's one HTTP server (gridnode::http::Server).
//
//   GET|HEAD <telemetry path>   the last sweep's snapshot, what `gridnodectl metrics` prints
//                               (text 0.0.4, gzip on Accept-Encoding); collect[]=NAME and
//                               exclude[]=NAME select drivers as node_exporter's collectors
//   GET|HEAD /                  a small index page linking the telemetry path
//   anything else               404
//
// A scrape never starts a sweep and never waits for a driver: it renders what the sampler
// already holds, on the loop, into a buffer reused from scrape to scrape.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "gridnode/agent/config.hpp"
#include "gridnode/http/server.hpp"
#include "gridnode/http/web_config.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::agent {

// What the endpoint needs of a web config: the TLS context, the basic-auth check, the headers.
struct WebSecurity {
  std::shared_ptr<crypto::TlsContext> tls;  // null: plain HTTP
  std::function<bool(const http::Request&, http::Response&)> authorize;  // empty: everyone
  std::vector<http::Header> headers;
  std::string summary;  // "tls, client certificates required, basic auth (1 user)", for the log
};

// Reads `path` (exporter-toolkit's format) and builds what it asks for. Empty path: plain HTTP,
// no auth. Errors name the file, line and key (http::read_web_config's messages).
[[nodiscard]] platform::Result<WebSecurity> make_web_security(const std::string& path);

class WebEndpoint {
 public:
  // Renders the exposition into `out` (cleared first) for the drivers `include` selects (null:
  // every driver); the agent's render, which appends this endpoint's own metrics.
  using Render = std::function<void(const std::vector<bool>* include, std::string& out)>;

  // Binds config.web_listen (fails naming the address) with the security config.web_config_file
  // asks for (fails naming its file, line and key). `drivers`: the sampler's driver names in
  // slot order, for collect[] / exclude[]. Loop thread only, from here on.
  [[nodiscard]] static platform::Result<std::unique_ptr<WebEndpoint>> make(
      asio::io_context& io, const Config& config, std::vector<std::string> drivers,
      Render render);
  ~WebEndpoint();
  WebEndpoint(const WebEndpoint&) = delete;
  WebEndpoint& operator=(const WebEndpoint&) = delete;

  // SIGHUP: the telemetry path, and the web config file read again; new connections get its
  // TLS, auth and headers. The listening sockets and their bound stay as they were made.
  void apply(const Config& config, WebSecurity security);

  void close();

  // gridnode_web_requests_total, gridnode_web_refused_total{reason},
  // gridnode_web_connections: appended to the exposition.
  void append_metrics(std::string& out) const;

  std::vector<asio::ip::tcp::endpoint> local_endpoints() const;

 private:
  WebEndpoint(std::vector<std::string> drivers, Render render, std::string telemetry_path);
  void handle(const http::Request& request, http::Response& response);
  void serve_metrics(const http::Request& request, http::Response& response);
  void set_telemetry_path(std::string path);

  std::vector<std::string> drivers_;
  Render render_;
  std::string telemetry_path_;
  std::string index_html_;
  std::unique_ptr<http::Server> server_;
  std::vector<bool> include_;  // scratch: the scrape's driver selection
  // Reused between scrapes, and sent as they are (Response::shared_body): the rendered text,
  // and its gzip. One still being written to a client is left to it, and a fresh one taken.
  std::shared_ptr<std::string> text_;
  std::shared_ptr<std::string> gzipped_;
  std::size_t text_reserve_ = 0;  // the last text's size and a little: the next one's reserve
  std::uint64_t bad_selections_ = 0;  // 400s for collect[] / exclude[]
  std::uint64_t not_found_ = 0;
};

}  // namespace gridnode::agent
