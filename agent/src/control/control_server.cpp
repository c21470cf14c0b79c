#include "gridnode/agent/control_server.hpp"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <filesystem>

#include "gridnode/platform/log.hpp"

namespace gridnode::agent {

using asio::local::stream_protocol;
using platform::Level;
using platform::LogLine;

class ControlServer::Session : public std::enable_shared_from_this<ControlServer::Session> {
 public:
  Session(ControlServer& server, stream_protocol::socket socket)
      : server_(server),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(server.options_.max_request_bytes) {}

  void start() {
    auto peer = platform::peer_credentials(socket_.native_handle());
    if (!peer) {
      platform::log(Level::warning, "control",
                    LogLine("cannot identify peer, closing").kv("err", peer.error().message()));
      close();
      return;
    }
    peer_ = *peer;
    if (auto why = server_.refusal(peer_)) {
      ++server_.refused_total_;
      platform::log(Level::warning, "control",
                    LogLine("request refused")
                        .kv("uid", static_cast<std::int64_t>(peer_.uid))
                        .kv("user", platform::user_name(peer_.uid))
                        .kv("pid", static_cast<std::int64_t>(peer_.pid)));
      if (server_.on_refused_) {
        server_.on_refused_(peer_, *why);
      }
      nlohmann::json answer = {{"ok", false}, {"error", *why}};
      do_write(answer.dump() + "\n", /*then_close=*/true);
      return;
    }
    do_read();
  }

  void close() {
    std::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
    server_.sessions_.erase(shared_from_this());
  }

 private:
  void arm_idle_timer() {
    timer_.expires_after(server_.options_.idle_timeout);
    timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (!ec) {
        self->close();  // an idle or slow client does not hold a session forever
      }
    });
  }

  void do_read() {
    arm_idle_timer();
    asio::async_read_until(socket_, buffer_, '\n',
                           [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
                             self->on_read(ec, n);
                           });
  }

  void on_read(const std::error_code& ec, std::size_t n) {
    if (ec == asio::error::not_found) {
      // More than max_request_bytes without a newline.
      nlohmann::json answer = {{"ok", false}, {"error", "request too large"}};
      do_write(answer.dump() + "\n", true);
      return;
    }
    if (ec) {
      close();  // eof: the client is done; operation_aborted: we are stopping
      return;
    }
    std::string line(asio::buffers_begin(buffer_.data()),
                     asio::buffers_begin(buffer_.data()) + static_cast<std::ptrdiff_t>(n));
    buffer_.consume(n);
    nlohmann::json request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (request.is_discarded() || !request.is_object()) {
      answer({{"ok", false}, {"error", "malformed request: expected one JSON object per line"}});
      return;
    }
    // The idle timeout is for a silent client, not for an agent still working on the answer.
    timer_.cancel();
    server_.handler_(request, peer_,
                     [self = shared_from_this()](nlohmann::json a) { self->answer(a); });
  }

  void answer(const nlohmann::json& a) {
    if (!socket_.is_open()) {
      return;  // closed meanwhile (the server stopped)
    }
    do_write(a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", false);
  }

  void do_write(std::string text, bool then_close) {
    out_ = std::move(text);
    arm_idle_timer();
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), then_close](const std::error_code& ec,
                                                              std::size_t) {
                        if (ec || then_close) {
                          self->close();
                          return;
                        }
                        self->do_read();
                      });
  }

  ControlServer& server_;
  stream_protocol::socket socket_;
  asio::steady_timer timer_;
  asio::streambuf buffer_;
  std::string out_;
  platform::PeerCredentials peer_;
};

ControlServer::ControlServer(asio::io_context& io, Options options, Handler handler)
    : io_(io), options_(std::move(options)), handler_(std::move(handler)), acceptor_(io) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::set_group(std::optional<gid_t> group, std::string name) {
  options_.group = group;
  options_.group_name = std::move(name);
  if (bound_ && group) {
    // Under systemd the socket is born in the service's group already; chown(2) is then not
    // called at all, so that the unit may deny @chown (SystemCallFilter=~@privileged).
    struct stat st {};
    if (::stat(options_.path.c_str(), &st) == 0 && st.st_gid == *group) {
      return;
    }
    if (::chown(options_.path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
      platform::log(Level::warning, "control",
                    LogLine("cannot give the socket to its group")
                        .kv("path", options_.path)
                        .kv("err", std::error_code(errno, std::generic_category()).message()));
    }
  }
}

std::optional<std::string> ControlServer::refusal(const platform::PeerCredentials& peer) const {
  if (peer.uid == 0 || peer.uid == ::geteuid()) {
    return std::nullopt;
  }
  if (options_.group && peer.in_group(*options_.group)) {
    return std::nullopt;
  }
  for (gid_t g : extra_groups_) {
    if (peer.in_group(g)) {
      return std::nullopt;
    }
  }
  std::string who = platform::user_name(peer.uid);
  std::string others;  // the policy's groups, other than the socket's
  for (const std::string& name : extra_group_names_) {
    if (name != options_.group_name && others.find(name) == std::string::npos) {
      others += (others.empty() ? "" : ", ") + name;
    }
  }
  if (options_.group) {
    return "permission denied: user " + who + " is not root and not in group " +
           options_.group_name + (others.empty() ? "" : " nor in " + others);
  }
  if (!others.empty()) {
    return "permission denied: user " + who + " is not root and not in " + others;
  }
  return "permission denied: only root may query this agent (user " + who + ")";
}

platform::Result<void> ControlServer::start() {
  const std::string& path = options_.path;
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return platform::fail(std::errc::filename_too_long, path + ": socket path too long");
  }
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return platform::fail(ec, parent.string());
    }
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return platform::fail(std::errc::file_exists, path + ": exists and is not a socket");
    }
    // Someone answering there is a live agent; a refused connection is a crash's leftover.
    stream_protocol::socket probe(io_);
    probe.connect(stream_protocol::endpoint(path), ec);
    if (!ec) {
      return platform::fail(std::errc::address_in_use,
                            path + ": another gridnoded is already listening");
    }
    ::unlink(path.c_str());
  }
  acceptor_.open(stream_protocol(), ec);
  if (!ec) {
    // Bind under a tight umask so that the socket is never, even briefly, more open than
    // its final mode.
    mode_t old = ::umask(0177);
    acceptor_.bind(stream_protocol::endpoint(path), ec);
    ::umask(old);
  }
  if (ec) {
    return platform::fail(ec, path);
  }
  bound_ = true;
  if (::chmod(path.c_str(), options_.mode) != 0) {
    return platform::fail_errno(errno, path + ": chmod");
  }
  set_group(options_.group, options_.group_name);
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return platform::fail(ec, path + ": listen");
  }
  do_accept();
  return {};
}

void ControlServer::do_accept() {
  acceptor_.async_accept([this](const std::error_code& ec, stream_protocol::socket socket) {
    if (!acceptor_.is_open()) {
      return;  // stopped
    }
    if (!ec) {
      if (sessions_.size() >= options_.max_sessions) {
        std::error_code ignored;
        socket.close(ignored);  // shed load instead of growing without bound
      } else {
        auto session = std::make_shared<Session>(*this, std::move(socket));
        sessions_.insert(session);
        session->start();
      }
    }
    do_accept();
  });
}

void ControlServer::stop() {
  std::error_code ignored;
  if (acceptor_.is_open()) {
    acceptor_.close(ignored);
  }
  auto sessions = sessions_;
  for (const auto& s : sessions) {
    s->close();
  }
  if (bound_) {
    ::unlink(options_.path.c_str());
    bound_ = false;
  }
}

}  // namespace gridnode::agent
