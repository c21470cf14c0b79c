#include "gridnode/agent/web_endpoint.hpp"

#include <malloc.h>

#include <algorithm>
#include <string_view>

#include "gridnode/platform/log.hpp"

namespace gridnode::agent {
namespace {

using platform::Level;
using platform::LogLine;

constexpr std::string_view kComponent = "web";
// Prometheus' text format 0.0.4, as node_exporter's promhttp answers it.
constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// The endpoint's own metrics: spelled once, here.
constexpr std::string_view kRequests = "gridnode_web_requests_total";
constexpr std::string_view kRefused = "gridnode_web_refused_total";
constexpr std::string_view kConnections = "gridnode_web_connections";

const char* client_auth_name(http::ClientAuth a) {
  switch (a) {
    case http::ClientAuth::no_client_cert:
      return "no client certificate";
    case http::ClientAuth::request_client_cert:
      return "client certificate requested";
    case http::ClientAuth::require_any_client_cert:
      return "client certificate required";
    case http::ClientAuth::verify_client_cert_if_given:
      return "client certificate verified if given";
    case http::ClientAuth::require_and_verify_client_cert:
      return "client certificate required and verified";
  }
  return "?";
}

// The buffer behind `p`, or a fresh one when a response still being written holds it.
std::string& reusable(std::shared_ptr<std::string>& p) {
  if (p == nullptr || p.use_count() > 1) {
    p = std::make_shared<std::string>();
  }
  return *p;
}

}  // namespace

platform::Result<WebSecurity> make_web_security(const std::string& path) {
  WebSecurity s;
  if (path.empty()) {
    s.summary = "plain HTTP, no authentication";
    return s;
  }
  auto config = http::read_web_config(path);
  if (!config) {
    return tl::unexpected(config.error());
  }
  if (config->tls) {
    auto tls = http::make_tls_context(*config->tls);
    if (!tls) {
      return tl::unexpected(tls.error());
    }
    s.tls = std::move(*tls);
    s.summary = std::string("TLS (") + client_auth_name(config->tls->client_auth) + ")";
  } else {
    s.summary = "plain HTTP";
  }
  if (!config->basic_auth_users.empty()) {
    const std::size_t users = config->basic_auth_users.size();
    s.authorize = http::make_basic_auth(std::move(config->basic_auth_users), std::string(kComponent));
    s.summary += ", basic auth (" + std::to_string(users) + (users == 1 ? " user)" : " users)");
  } else {
    s.summary += ", no authentication";
  }
  s.headers = std::move(config->headers);
  return s;
}

WebEndpoint::WebEndpoint(std::vector<std::string> drivers, Render render,
                         std::string telemetry_path)
    : drivers_(std::move(drivers)), render_(std::move(render)) {
  include_.assign(drivers_.size(), false);
  set_telemetry_path(std::move(telemetry_path));
}

WebEndpoint::~WebEndpoint() { close(); }

platform::Result<std::unique_ptr<WebEndpoint>> WebEndpoint::make(asio::io_context& io,
                                                                 const Config& config,
                                                                 std::vector<std::string> drivers,
                                                                 Render render) {
  auto security = make_web_security(config.web_config_file);
  if (!security) {
    return tl::unexpected(security.error());
  }
  std::unique_ptr<WebEndpoint> w(
      new WebEndpoint(std::move(drivers), std::move(render), config.web_telemetry_path));
  http::ServerOptions o;
  o.listen = config.web_listen;
  if (config.web_max_requests != 0) {
    o.limits.max_connections = config.web_max_requests;
  }
  o.component = std::string(kComponent);
  o.tls = std::move(security->tls);
  o.authorize = std::move(security->authorize);
  o.extra_headers = std::move(security->headers);
  WebEndpoint* self = w.get();
  auto server = http::Server::make(io, std::move(o),
                                   [self](const http::Request& request, http::Response& response) {
                                     self->handle(request, response);
                                   });
  if (!server) {
    return tl::unexpected(server.error());
  }
  w->server_ = std::move(*server);
  // The loop thread's deflate state, made now, during start-up: a thread_local with a destructor
  // registers it through the loader (__cxa_thread_atexit_impl), whose code would otherwise be
  // mapped back in by the first gzip scrape, after the agent released its start-up pages.
  std::string warm;
  (void)http::gzip({}, warm);
  std::string addresses;
  for (const auto& e : w->server_->local_endpoints()) {
    if (!addresses.empty()) {
      addresses += ',';
    }
    addresses += e.address().is_v6() ? "[" + e.address().to_string() + "]"
                                     : e.address().to_string();
    addresses += ':' + std::to_string(e.port());
  }
  platform::log(Level::notice, kComponent,
                LogLine("listening")
                    .kv("address", addresses)
                    .kv("path", w->telemetry_path_)
                    .kv("security", security->summary)
                    .kv("config", config.web_config_file.empty() ? "none"
                                                                 : config.web_config_file));
  return w;
}

void WebEndpoint::set_telemetry_path(std::string path) {
  telemetry_path_ = std::move(path);
  // The path was checked by the config (no quote, '<', '>' or '&'), so it goes in as it is.
  index_html_ =
      "<html>\n<head><title>gridnoded</title></head>\n<body>\n<h1>gridnoded</h1>\n"
      "<p>The gridnode agent, scraped like node_exporter.</p>\n<p><a href=\"" +
      telemetry_path_ + "\">Metrics</a></p>\n</body>\n</html>\n";
}

void WebEndpoint::apply(const Config& config, WebSecurity security) {
  set_telemetry_path(config.web_telemetry_path);
  if (server_) {
    server_->reconfigure(std::move(security.tls), std::move(security.authorize),
                         std::move(security.headers));
  }
  platform::log(Level::notice, kComponent,
                LogLine("reconfigured").kv("path", telemetry_path_).kv("security", security.summary));
}

void WebEndpoint::close() {
  if (server_) {
    server_->close();
  }
}

std::vector<asio::ip::tcp::endpoint> WebEndpoint::local_endpoints() const {
  return server_ ? server_->local_endpoints() : std::vector<asio::ip::tcp::endpoint>{};
}

void WebEndpoint::handle(const http::Request& request, http::Response& response) {
  if (request.path == telemetry_path_) {
    serve_metrics(request, response);
    return;
  }
  if (request.path == "/") {
    response.content_type = "text/html; charset=utf-8";
    response.body = index_html_;
    return;
  }
  ++not_found_;
  response.status = 404;
  response.body = "404 page not found\n";  // Go's net/http, as node_exporter answers
}

// collect[] and exclude[] as node_exporter 1.x reads them: the named drivers only, or all but
// them; a name this agent does not run is an error, and so is asking for both.
void WebEndpoint::serve_metrics(const http::Request& request, http::Response& response) {
  bool collect = false;
  bool exclude = false;
  std::string unknown;
  bool bad_name = false;
  if (!request.query.empty()) {
    for (const auto& [name, value] : request.params()) {
      const bool c = name == "collect[]";
      if (!c && name != "exclude[]") {
        continue;  // other parameters are ignored, as node_exporter does
      }
      if (!collect && !exclude) {
        include_.assign(drivers_.size(), !c);
      }
      (c ? collect : exclude) = true;
      auto it = std::find(drivers_.begin(), drivers_.end(), value);
      if (it == drivers_.end()) {
        unknown = value;
        bad_name = true;
        break;
      }
      include_[static_cast<std::size_t>(it - drivers_.begin())] = c;
    }
  }
  if (bad_name || (collect && exclude)) {
    ++bad_selections_;
    response.status = 400;
    if (collect && exclude) {
      response.body = "couldn't create filtered metrics handler: collect[] and exclude[] "
                      "cannot be used together\n";
    } else {
      std::string known;
      for (const auto& d : drivers_) {
        known += known.empty() ? d : ", " + d;
      }
      response.body = "couldn't create filtered metrics handler: collector \"" + unknown +
                      "\" not available (this agent runs: " + known + ")\n";
    }
    return;
  }
  const std::vector<bool>* include = collect || exclude ? &include_ : nullptr;
  response.content_type = std::string(kTextContentType);
  // Rendered into the buffer kept from the last scrape (its capacity stays), and written to
  // the client from there (or from the gzip's kept buffer): no copy of the body.
  std::string& text = reusable(text_);
  text.reserve(text_reserve_);
  render_(include, text);
  if (!http::accepts_gzip(request.header("Accept-Encoding"))) {
    response.shared_body = text_;
    return;
  }
  if (auto z = http::gzip(text, reusable(gzipped_)); !z) {
    // Not compressed, still correct: the plain text, and one line for a problem that should
    // not happen (deflate fails only without memory).
    platform::log(Level::warning, kComponent, LogLine("gzip failed").kv("err", z.error().message()));
    response.shared_body = text_;
    return;
  }
  response.shared_body = gzipped_;
  // The text is not needed until the next scrape (about a second away, with a sweep in
  // between): its memory goes back to the kernel, and the next render reserves its size at once.
  // The gzip (a ninth of it) is what stays.
  text_reserve_ = text.size() + text.size() / 16;
  text_.reset();
  ::malloc_trim(0);
  response.headers.push_back({"Content-Encoding", "gzip"});
  response.headers.push_back({"Vary", "Accept-Encoding"});
}

void WebEndpoint::append_metrics(std::string& out) const {
  if (!server_) {
    return;
  }
  auto header = [&out](std::string_view name, std::string_view help, std::string_view type) {
    out.append("# HELP ").append(name).append(" ").append(help);
    out.append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
  };
  auto sample = [&out](std::string_view name, std::string_view reason, std::uint64_t v) {
    out += name;
    if (!reason.empty()) {
      out.append("{reason=\"").append(reason).append("\"}");
    }
    out += ' ';
    out += std::to_string(v);
    out += '\n';
  };
  const http::ServerStats& s = server_->stats();
  header(kRequests, "HTTP requests the scrape endpoint answered, since gridnoded started.",
         "counter");
  sample(kRequests, {}, s.requests);
  header(kRefused,
         "Connections and requests the scrape endpoint refused, by reason, since gridnoded "
         "started.",
         "counter");
  sample(kRefused, "too_many_connections", s.refused_connections);
  sample(kRefused, "bad_request", s.bad_requests);
  sample(kRefused, "tls_handshake", s.tls_handshake_failures);
  sample(kRefused, "unauthorized", s.unauthorized);
  sample(kRefused, "bad_collector", bad_selections_);
  sample(kRefused, "not_found", not_found_);
  header(kConnections, "Connections open on the scrape endpoint.", "gauge");
  sample(kConnections, {}, s.open_connections);
}

}  // namespace gridnode::agent
