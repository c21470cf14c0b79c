// http::Server: acceptors and connections on the caller's io_context (one thread: no strand, no
// mutex). Each connection is a small state machine, kept alive by its pending operations
// (handlers capture `self`):
//
//   accept → [TLS handshake] → read → parse (RequestParser) → handler → write ─┐
//              ↑ keep-alive: parse what is already buffered (pipelining), else read ┘
//   an error answer, Connection: close, HTTP/1.0 → write → orderly close (TLS close_notify, or
//   shutdown(send) and input discarded for a moment, so the peer reads the answer, not a reset)
//
// One timer per connection bounds every phase: request_timeout from the connection (handshake
// included) or from the first byte of a kept connection's next request to that request's last
// byte; idle_timeout for the first byte after a response; write_timeout for a response. One
// response is in flight at a time and nothing is read meanwhile, so a connection holds its
// 4 KiB input buffer, its parser (the request line and headers, bounded by Limits) and one
// response.

#include "gridnode/http/server.hpp"

#include <array>
#include <cstring>
#include <ctime>
#include <exception>
#include <unordered_set>

#include <asio/ip/v6_only.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include "gridnode/crypto/tls.hpp"
#include "gridnode/http/request_parser.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"

namespace gridnode::http {
namespace {

using Clock = std::chrono::steady_clock;
using platform::Level;
using platform::LogLine;
using tcp = asio::ip::tcp;

// After a last answer: how long the peer's unread input is discarded before the socket closes.
constexpr std::chrono::milliseconds kLinger{2000};
constexpr std::size_t kLingerBytes = 256 * 1024;
// A failed accept (EMFILE) is retried after this long, not at once in a loop.
constexpr std::chrono::milliseconds kAcceptRetry{200};

std::string endpoint_text(const tcp::endpoint& ep) {
  asio::ip::address a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  }
  const std::string port = std::to_string(ep.port());
  return a.is_v6() ? "[" + a.to_string() + "]:" + port : a.to_string() + ":" + port;
}

// A kind of warning at most once a minute, carrying how many were held back in between.
class Throttle {
 public:
  bool allow(std::uint64_t& held) {
    const auto now = Clock::now();
    if (now < next_) {
      ++held_;
      return false;
    }
    held = held_;
    held_ = 0;
    next_ = now + std::chrono::minutes(1);
    return true;
  }

 private:
  Clock::time_point next_{};
  std::uint64_t held_ = 0;
};

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
  }
}

bool header_safe(const Header& h) {
  return h.name.find_first_of("\r\n:") == std::string::npos &&
         h.value.find_first_of("\r\n") == std::string::npos && !h.name.empty();
}

void append_header(std::string& out, const Header& h) {
  if (header_safe(h)) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
}

// RFC 9110's IMF-fixdate, formatted here: strftime would page in libc's locale machinery for
// one fixed English format.
void append_date(std::string& out) {
  static constexpr char kDays[] = "SunMonTueWedThuFriSat";
  static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[40];
  auto two = [&buf](std::size_t at, int v) {
    buf[at] = static_cast<char>('0' + v / 10 % 10);
    buf[at + 1] = static_cast<char>('0' + v % 10);
  };
  static constexpr char kTemplate[] = "Date: Sun, 00 Jan 0000 00:00:00 GMT\r\n";
  constexpr std::size_t kLen = sizeof kTemplate - 1;
  std::memcpy(buf, kTemplate, kLen);
  std::memcpy(buf + 6, kDays + 3 * (tm.tm_wday % 7), 3);
  two(11, tm.tm_mday);
  std::memcpy(buf + 14, kMonths + 3 * (tm.tm_mon % 12), 3);
  const int year = tm.tm_year + 1900;
  two(18, year / 100);
  two(20, year % 100);
  two(23, tm.tm_hour);
  two(26, tm.tm_min);
  two(29, tm.tm_sec);
  out.append(buf, kLen);
}

platform::Result<tcp::acceptor> open_listener(asio::io_context& io, const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    return platform::fail(std::errc::invalid_argument,
                          "listen address \"" + text + "\": HOST:PORT expected");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto port = platform::parse_uint64(text.substr(colon + 1));
  if (!port || *port > 65535) {
    return platform::fail(std::errc::invalid_argument,
                          "listen address \"" + text + "\": a port 0-65535 expected");
  }
  const auto p = static_cast<unsigned short>(*port);
  std::error_code ec;
  tcp::acceptor acceptor(io);
  auto bind = [&](const tcp::endpoint& ep, bool dual) {
    std::error_code e;
    if (acceptor.is_open()) {
      acceptor.close(e);
    }
    acceptor.open(ep.protocol(), e);
    if (!e && dual) acceptor.set_option(asio::ip::v6_only(false), e);
    if (!e) acceptor.set_option(tcp::acceptor::reuse_address(true), e);
    if (!e) acceptor.bind(ep, e);
    if (!e) acceptor.listen(asio::socket_base::max_listen_connections, e);
    return e;
  };
  if (host.empty()) {
    // Every address, IPv4 and IPv6, on one socket, as Go's net.Listen(":9100") does; IPv4 alone
    // where the kernel has no IPv6.
    ec = bind(tcp::endpoint(tcp::v6(), p), true);
    if (ec) {
      ec = bind(tcp::endpoint(tcp::v4(), p), false);
    }
  } else {
    asio::ip::address addr = asio::ip::make_address(host, ec);
    if (ec) {  // a name ("localhost"): its first address
      tcp::resolver resolver(io);
      auto found = resolver.resolve(host, std::to_string(p),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
      if (ec || found.empty()) {
        return platform::fail(ec ? ec : std::make_error_code(std::errc::invalid_argument),
                              "listen address \"" + text + "\": host not found");
      }
      addr = found.begin()->endpoint().address();
    }
    ec = bind(tcp::endpoint(addr, p), false);
  }
  if (ec) {
    return platform::fail(ec, "cannot listen on " + text);
  }
  return acceptor;
}

class Connection;

struct Config {
  std::shared_ptr<crypto::TlsContext> tls;
  std::function<bool(const Request&, Response&)> authorize;
  std::vector<Header> extra_headers;
};

struct State : std::enable_shared_from_this<State> {
  State(asio::io_context& i, ServerOptions o, Handler h)
      : io(i), options(std::move(o)), handler(std::move(h)) {}

  void accept(std::size_t i);
  void accepted(tcp::socket socket);
  void warn(Throttle& t, LogLine line) {
    std::uint64_t held = 0;
    if (platform::Log::enabled(Level::warning) && t.allow(held)) {
      if (held > 0) {
        line.kv("more_since_last", static_cast<std::int64_t>(held));
      }
      platform::log(Level::warning, options.component, line);
    }
  }

  asio::io_context& io;
  ServerOptions options;
  Handler handler;
  std::shared_ptr<const Config> config;
  std::vector<tcp::acceptor> acceptors;
  std::unordered_set<Connection*> connections;
  ServerStats stats;
  bool closed = false;
  Throttle refused_log, bad_log, slow_log, tls_log, accept_log, write_log, handler_log;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<State> server, tcp::socket socket,
             std::shared_ptr<const Config> config, std::string remote)
      : server_(std::move(server)),
        config_(std::move(config)),
        socket_(std::move(socket)),
        timer_(server_->io),
        parser_(server_->options.limits, server_->options.methods),
        remote_(std::move(remote)) {
    server_->connections.insert(this);
    ++server_->stats.open_connections;
  }

  ~Connection() {
    server_->connections.erase(this);
    --server_->stats.open_connections;
  }

  void start() {
    const Limits& l = server_->options.limits;
    arm(l.request_timeout, Timeout::request);
    if (config_->tls == nullptr) {
      read();
      return;
    }
    tls_ = std::make_unique<crypto::TlsStream>(config_->tls, std::move(socket_));
    tls_->async_handshake([self = shared_from_this()](platform::Result<void> r) {
      if (self->closed_) {
        return;
      }
      if (!r) {
        ++self->server_->stats.tls_handshake_failures;
        self->server_->warn(self->server_->tls_log,
                            LogLine("TLS handshake failed")
                                .kv("remote", self->remote_)
                                .kv("err", r.error().message()));
        self->close_now();
        return;
      }
      self->read();
    });
  }

  // Immediate: every pending operation ends aborted and nothing more is done.
  void close_now() {
    if (closed_) {
      return;
    }
    closed_ = true;
    timer_.cancel();
    std::error_code ignored;
    if (tls_ != nullptr) {
      tls_->close();
    } else {
      socket_.close(ignored);
    }
  }

 private:
  enum class Timeout : unsigned char { request, idle, write, linger };

  void arm(std::chrono::milliseconds d, Timeout kind) {
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this(), kind, gen = ++timer_gen_](std::error_code ec) {
      if (ec || gen != self->timer_gen_ || self->closed_) {
        return;
      }
      self->timed_out(kind);
    });
  }

  void timed_out(Timeout kind) {
    switch (kind) {
      case Timeout::request:
        ++server_->stats.bad_requests;
        server_->warn(server_->slow_log,
                      LogLine("connection closed: request not complete in time")
                          .kv("remote", remote_)
                          .kv("timeout_ms", server_->options.limits.request_timeout.count()));
        break;
      case Timeout::write:
        server_->warn(server_->write_log, LogLine("connection closed: response not taken in time")
                                              .kv("remote", remote_));
        break;
      case Timeout::idle:
      case Timeout::linger:
        break;
    }
    close_now();
  }

  void read() {
    if (begin_ == end_) {
      begin_ = end_ = 0;
    } else if (begin_ > 0) {  // a pipelined request's start: to the front
      std::copy(buf_.begin() + static_cast<std::ptrdiff_t>(begin_),
                buf_.begin() + static_cast<std::ptrdiff_t>(end_), buf_.begin());
      end_ -= begin_;
      begin_ = 0;
    }
    const asio::mutable_buffer into(buf_.data() + end_, buf_.size() - end_);
    if (tls_ != nullptr) {
      tls_->async_read_some(into, [self = shared_from_this()](platform::Result<std::size_t> r) {
        self->on_read(r ? std::error_code{} : r.error().code, r ? *r : 0);
      });
    } else {
      socket_.async_read_some(into, [self = shared_from_this()](std::error_code ec, std::size_t n) {
        self->on_read(ec, n);
      });
    }
  }

  void on_read(std::error_code ec, std::size_t n) {
    if (closed_) {
      return;
    }
    if (ec) {  // the peer went away (at the end, or mid-request): nothing to answer
      if (parser_.started() && platform::Log::enabled(Level::debug)) {
        platform::log(Level::debug, server_->options.component,
                      LogLine("peer closed mid-request").kv("remote", remote_));
      }
      close_now();
      return;
    }
    end_ += n;
    process();
  }

  // Parses what is buffered: answers a complete request, or reads more.
  void process() {
    while (begin_ < end_) {
      const auto fed = parser_.feed(std::string_view(buf_.data() + begin_, end_ - begin_));
      begin_ += fed.consumed;
      if (idle_ && parser_.started()) {
        idle_ = false;
        arm(server_->options.limits.request_timeout, Timeout::request);
      }
      if (fed.status == RequestParser::Status::failed) {
        refuse();
        return;
      }
      if (fed.status == RequestParser::Status::complete) {
        answer();
        return;
      }
    }
    read();
  }

  void refuse() {
    ++server_->stats.bad_requests;
    const int status = parser_.error_status();
    server_->warn(server_->bad_log, LogLine("request refused")
                                        .kv("remote", remote_)
                                        .kv("status", status)
                                        .kv("err", parser_.error_text()));
    Response r;
    r.status = status;
    r.body = parser_.error_text() + "\n";
    if (status == 405) {
      r.headers.push_back({"Allow", allow_header(server_->options.methods)});
    }
    send(std::move(r), false, false, false);
  }

  void answer() {
    Request& req = parser_.request();
    req.remote = remote_;
    req.tls = tls_ != nullptr;
    ++server_->stats.requests;
    Response r;
    if (config_->authorize && !config_->authorize(req, r)) {
      // Counted only: authorize logs its own refusals (make_basic_auth names user and reason).
      ++server_->stats.unauthorized;
    } else {
      try {
        server_->handler(req, r);
      } catch (const std::exception& e) {  // a handler must not throw; the loop must not unwind
        server_->warn(server_->handler_log,
                      LogLine("handler failed").kv("path", req.path).kv("err", e.what()));
        r = Response{};
        r.status = 500;
        r.body = "internal error\n";
      }
    }
    send(std::move(r), req.method == "HEAD", parser_.keep_alive() && !server_->closed,
         parser_.http10());
  }

  // The headers go into out_, the body stays where the response holds it (moved into body_, or
  // shared_body_ referenced): one gathered write of both, no copy of the body.
  void send(Response&& r, bool head, bool keep, bool http10) {
    out_.clear();
    out_ += "HTTP/1.1 ";
    out_ += std::to_string(r.status);
    out_ += ' ';
    out_ += reason(r.status);
    out_ += "\r\n";
    if (!r.content_type.empty()) {
      append_header(out_, {"Content-Type", r.content_type});
    }
    out_ += "Content-Length: ";
    out_ += std::to_string(r.body_view().size());
    out_ += "\r\n";
    append_date(out_);
    for (const Header& h : config_->extra_headers) {
      append_header(out_, h);
    }
    for (const Header& h : r.headers) {
      append_header(out_, h);
    }
    if (!keep) {
      out_ += "Connection: close\r\n";
    } else if (http10) {
      out_ += "Connection: keep-alive\r\n";
    }
    out_ += "\r\n";
    if (!head) {
      shared_body_ = std::move(r.shared_body);
      if (shared_body_ == nullptr) {
        body_ = std::move(r.body);
      }
    }
    const std::string_view body = shared_body_ != nullptr ? std::string_view(*shared_body_)
                                                          : std::string_view(body_);
    keep_ = keep;
    arm(server_->options.limits.write_timeout, Timeout::write);
    if (tls_ != nullptr) {
      // TlsStream writes one buffer: the headers, then the body (two records).
      tls_->async_write(asio::buffer(out_), [self = shared_from_this(),
                                             body](platform::Result<void> w) {
        if (!w || body.empty() || self->closed_) {
          self->written(w ? std::error_code{} : w.error().code);
          return;
        }
        self->tls_->async_write(asio::buffer(body.data(), body.size()),
                                [self](platform::Result<void> w2) {
                                  self->written(w2 ? std::error_code{} : w2.error().code);
                                });
      });
    } else {
      const std::array<asio::const_buffer, 2> bufs{asio::buffer(out_),
                                                   asio::buffer(body.data(), body.size())};
      asio::async_write(socket_, bufs,
                        [self = shared_from_this()](std::error_code ec, std::size_t) {
                          self->written(ec);
                        });
    }
  }

  void written(std::error_code ec) {
    if (closed_) {
      return;
    }
    shared_body_.reset();  // the handler's buffer is its own again
    if (body_.capacity() > 4096) {
      std::string().swap(body_);  // a big answer's memory is not kept by an idle connection
    } else {
      body_.clear();
    }
    if (ec) {
      close_now();
      return;
    }
    if (!keep_) {
      finish();
      return;
    }
    parser_.next();
    idle_ = true;
    arm(server_->options.limits.idle_timeout, Timeout::idle);
    process();
  }

  // The orderly end after a last answer.
  void finish() {
    if (tls_ != nullptr) {
      timer_.cancel();  // async_shutdown is bounded by the context's shutdown_timeout
      tls_->async_shutdown([self = shared_from_this()] { self->close_now(); });
      return;
    }
    std::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm(kLinger, Timeout::linger);
    discard();
  }

  void discard() {
    socket_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                              if (self->closed_) {
                                return;
                              }
                              self->discarded_ += n;
                              if (ec || self->discarded_ > kLingerBytes) {
                                self->close_now();
                                return;
                              }
                              self->discard();
                            });
  }

  std::shared_ptr<State> server_;
  std::shared_ptr<const Config> config_;
  tcp::socket socket_;
  std::unique_ptr<crypto::TlsStream> tls_;
  asio::steady_timer timer_;
  std::uint64_t timer_gen_ = 0;
  RequestParser parser_;
  std::string remote_;
  std::array<char, 4096> buf_{};
  std::size_t begin_ = 0, end_ = 0;
  std::size_t discarded_ = 0;
  std::string out_;  // the status line and headers
  std::string body_;
  std::shared_ptr<const std::string> shared_body_;
  bool keep_ = false;
  bool idle_ = false;
  bool closed_ = false;
};


void State::accept(std::size_t i) {
  acceptors[i].async_accept([self = shared_from_this(), i](std::error_code ec, tcp::socket socket) {
    if (self->closed) {
      return;
    }
    if (ec) {
      if (ec == asio::error::operation_aborted) {
        return;
      }
      self->warn(self->accept_log, LogLine("accept failed").kv("err", ec.message()));
      auto timer = std::make_shared<asio::steady_timer>(self->io, kAcceptRetry);
      timer->async_wait([self, i, timer](std::error_code e) {
        if (!e && !self->closed) {
          self->accept(i);
        }
      });
      return;
    }
    self->accepted(std::move(socket));
    self->accept(i);
  });
}

void State::accepted(tcp::socket socket) {
  std::error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) {
    return;  // gone already
  }
  if (stats.open_connections >= options.limits.max_connections) {
    ++stats.refused_connections;
    warn(refused_log, LogLine("connection refused: too many open")
                          .kv("remote", endpoint_text(peer))
                          .kv("max", static_cast<std::int64_t>(options.limits.max_connections)));
    socket.close(ec);
    return;
  }
  socket.set_option(tcp::no_delay(true), ec);
  std::make_shared<Connection>(shared_from_this(), std::move(socket), config, endpoint_text(peer))
      ->start();
}

}  // namespace

// The Server's API owns its Impl by unique_ptr; the connections and pending accepts share the
// State, so it lives until the last of their handlers has run.
struct Server::Impl {
  std::shared_ptr<State> state;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { close(); }

platform::Result<std::unique_ptr<Server>> Server::make(asio::io_context& io, ServerOptions options,
                                                       Handler handler) {
  if (options.listen.empty()) {
    return platform::fail(std::errc::invalid_argument, "no listen address");
  }
  auto state = std::make_shared<State>(io, std::move(options), std::move(handler));
  state->config = std::make_shared<const Config>(
      Config{state->options.tls, state->options.authorize, state->options.extra_headers});
  for (const std::string& text : state->options.listen) {
    auto acceptor = open_listener(io, text);
    if (!acceptor) {
      return tl::unexpected(acceptor.error());
    }
    state->acceptors.push_back(std::move(*acceptor));
  }
  for (std::size_t i = 0; i < state->acceptors.size(); ++i) {
    std::error_code ec;
    const auto ep = state->acceptors[i].local_endpoint(ec);
    // debug: the owner logs its own notice with what it serves (path, security, config).
    platform::log(Level::debug, state->options.component,
                  LogLine("listening")
                      .kv("address", endpoint_text(ep))
                      .kv("tls", state->options.tls != nullptr ? "on" : "off"));
    state->accept(i);
  }
  return std::unique_ptr<Server>(new Server(std::make_unique<Impl>(Impl{std::move(state)})));
}

std::vector<asio::ip::tcp::endpoint> Server::local_endpoints() const {
  std::vector<tcp::endpoint> out;
  for (const tcp::acceptor& a : impl_->state->acceptors) {
    std::error_code ec;
    out.push_back(a.local_endpoint(ec));
  }
  return out;
}

void Server::reconfigure(std::shared_ptr<crypto::TlsContext> tls,
                         std::function<bool(const Request&, Response&)> authorize,
                         std::vector<Header> extra_headers) {
  impl_->state->config = std::make_shared<const Config>(
      Config{std::move(tls), std::move(authorize), std::move(extra_headers)});
}

void Server::close() {
  State& s = *impl_->state;
  if (s.closed) {
    return;
  }
  s.closed = true;
  for (tcp::acceptor& a : s.acceptors) {
    std::error_code ignored;
    a.close(ignored);
  }
  const std::vector<Connection*> open(s.connections.begin(), s.connections.end());
  for (Connection* c : open) {
    c->close_now();
  }
}

const ServerStats& Server::stats() const { return impl_->state->stats; }

}  // namespace gridnode::http
