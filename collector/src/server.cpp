#include "server.hpp"

#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/crypto/tls.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/platform/notify.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/policy_bundle.hpp"
#include "gridnode/protocol/session.hpp"
#include "endpoint.hpp"
#include "open_sink.hpp"
#include "gridnode/collector/remote_sender.hpp"
#include "gridnode/collector/store.hpp"

namespace gridnode::collector {
namespace {

using platform::Level;
using platform::LogLine;

class Server;

// The policy bundle the collector pushes (--policy-bundle), verified with --policy-key.
struct PolicyOffer {
  std::string path;
  crypto::Digest file_digest{};    // SHA-256 of the bundle's bytes: what answers name
  crypto::Digest policy_digest{};  // SHA-256 of the signed policy: what an agent runs
  protocol::Bytes payload;         // the policy_bundle frame's payload, encoded once
};

std::string short_hex(const crypto::Digest& d) { return crypto::to_hex(d).substr(0, 16); }

// Reads and verifies the bundle: never offer what the collector cannot verify itself. Errors
// keep their code and name the flag and file.
platform::Result<std::shared_ptr<const PolicyOffer>> load_policy_offer(const ServeOptions& o) {
  auto named = [](const std::string& what, const platform::Error& e) {
    return tl::unexpected(platform::Error{e.code, what + ": " + e.context});
  };
  std::string pem;
  if (auto r = platform::read_file(o.policy_key, pem, 64 << 10); !r) {
    return named("--policy-key " + o.policy_key, r.error());
  }
  auto key = crypto::PublicKey::from_pem(pem);
  if (!key) {
    return named("--policy-key " + o.policy_key, key.error());
  }
  std::string bytes;
  if (auto r = platform::read_file(o.policy_bundle, bytes, protocol::kMaxBundleBytes + 1); !r) {
    return named("--policy-bundle " + o.policy_bundle, r.error());
  }
  auto bundle = protocol::verify_bundle_signature(bytes, *key);
  if (!bundle) {
    return named("--policy-bundle " + o.policy_bundle,
                 platform::Error{bundle.error().code,
                                 bundle.error().context + " (--policy-key " + o.policy_key + ")"});
  }
  auto offer = std::make_shared<PolicyOffer>();
  offer->path = o.policy_bundle;
  offer->file_digest = crypto::sha256(std::string_view(bytes));
  offer->policy_digest = crypto::sha256(bundle->policy);
  protocol::encode(protocol::PolicyPush{std::move(bytes)}, offer->payload);
  return std::shared_ptr<const PolicyOffer>(std::move(offer));
}

// One agent's connection: handshake, hello/welcome, then batches in and acks out.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& server, std::unique_ptr<crypto::TlsStream> stream, asio::io_context& io)
      : server_(server), stream_(std::move(stream)), idle_(io) {}
  void start();
  void close(const std::string& why);
  const std::string& node() const { return node_; }
  // Pushes `offer` unless this session cannot take it or the agent runs its policy already.
  void offer_policy(const PolicyOffer& offer);

 private:
  void read();
  void on_data(std::size_t n);
  void on_committed(platform::Result<IngestResult> r);
  bool handle_hello(const protocol::Frame& f);
  bool handle_policy_status(const protocol::Frame& f);
  void send(protocol::FrameKind kind, const protocol::Bytes& payload);
  void flush();
  void on_loaded(platform::Result<NodeIngest*> ingest);
  void arm_idle();

  Server& server_;
  std::unique_ptr<crypto::TlsStream> stream_;
  asio::steady_timer idle_;
  std::chrono::steady_clock::time_point last_read_;  // idle_ closes the session this long after
  std::string node_;
  std::string peer_;
  NodeIngest* ingest_ = nullptr;
  bool greeted_ = false;
  bool closing_ = false;
  bool policy_frames_ = false;       // ALPN kSessionAlpnPolicy: the agent takes policy frames
  bool policy_reported_ = false;     // its policy_status (in force) has come
  crypto::Digest policy_running_{};  // the digest of the policy it reported in force
  std::optional<crypto::Digest> policy_pushed_;  // the bundle (file digest) pushed this session
  protocol::FrameAssembler in_;
  std::vector<protocol::Frame> frames_;
  std::vector<protocol::Frame> batch_;
  std::vector<std::uint8_t> out_;      // being written
  std::vector<std::uint8_t> queued_;   // to write next
  bool writing_ = false;
  bool close_after_write_ = false;
};

class Server {
 public:
  Server(asio::io_context& io, const ServeOptions& o, std::unique_ptr<Store> store,
         std::shared_ptr<crypto::TlsContext> tls, platform::ServiceNotifier notifier)
      : io_(io),
        options_(o),
        store_(std::move(store)),
        tls_(std::move(tls)),
        acceptor_(io),
        signals_(io, SIGTERM, SIGINT),
        hup_(io, SIGHUP),
        stats_timer_(io),
        notifier_(std::move(notifier)),
        watchdog_timer_(io) {}

  platform::Result<void> start() {
    if (auto r = listen_on(acceptor_, options_.listen); !r) {
      return r;
    }
    signals_.async_wait([this](const std::error_code& e, int) {
      if (!e) {
        stop(0);
      }
    });
    wait_hup();
    accept();
    log_stats_every_minute();
    notify(notifier_.ready(status_line()));
    if (auto period = notifier_.watchdog_interval() / 2; period.count() != 0) {
      notify(notifier_.watchdog());
      watchdog_timer_.expires_after(period);
      do_watchdog(period);
    }
    return {};
  }

  // systemd's STATUS= line: what `systemctl status gridnode-collector` shows.
  std::string status_line() const {
    std::string line = "listening on " + options_.listen + ", " + std::to_string(connections_) +
                       " connections, " + std::to_string(store_->stats().nodes) + " nodes, " +
                       std::to_string(reports_) + " reports, " + std::to_string(rejections_) +
                       " rejections";
    if (offer_) {
      line += ", policy versions " + policy_versions();
    }
    return line;
  }

  // "1:3,2:10": how many nodes run which policy version, as each last said (0: unversioned).
  std::string policy_versions() const {
    std::map<std::uint64_t, std::int64_t> count;
    for (const auto& [node, version] : node_policy_) {
      ++count[version];
    }
    std::string out;
    for (const auto& [version, n] : count) {
      out += (out.empty() ? "" : ",") + std::to_string(version) + ":" + std::to_string(n);
    }
    return out.empty() ? "none" : out;
  }

  const PolicyOffer* policy_offer() const { return offer_.get(); }
  // The node refused this bundle while it ran `running`, less than kRefusalKept ago: a new session
  // of the node (a reconnect, a restarted agent on the same policy) is not pushed it again, which
  // would only give it another refusal event. A new bundle, SIGHUP or the hour passing: again.
  bool refused_before(const std::string& node, const PolicyOffer& offer,
                      const crypto::Digest& running) const {
    auto it = refused_.find(node);
    return it != refused_.end() && it->second.bundle == offer.file_digest &&
           it->second.running == running &&
           std::chrono::steady_clock::now() - it->second.at < kRefusalKept;
  }
  void set_policy_offer(std::shared_ptr<const PolicyOffer> offer) { offer_ = std::move(offer); }

  // An agent's policy_status: logged, counted, and the node's version remembered.
  void on_policy_status(const std::string& node, const protocol::PolicyStatus& st) {
    node_policy_[node] = st.version;
    using R = protocol::PolicyStatus::Result;
    if (st.result == R::refused && offer_ && st.offered == offer_->file_digest) {
      refused_[node] = Refusal{st.offered, st.digest, std::chrono::steady_clock::now()};
    } else if (st.result == R::applied) {
      refused_.erase(node);
    }
    LogLine line(st.result == R::in_force  ? "node policy"
                 : st.result == R::applied ? "policy applied"
                                           : "policy refused");
    line.kv("node", node)
        .kv("version", static_cast<std::int64_t>(st.version))
        .kv("digest", short_hex(st.digest));
    if (st.result != R::in_force) {
      line.kv("bundle", short_hex(st.offered));
      if (offer_ && st.offered != offer_->file_digest) {
        line.kv("note", "an earlier bundle");
      }
    }
    if (!st.reason.empty()) {
      line.kv("reason", st.reason);
    }
    if (st.result == R::refused) {
      ++policy_refusals_;
    }
    platform::log(st.result == R::refused   ? Level::warning
                  : st.result == R::applied ? Level::notice
                                            : Level::info,
                  "collector", line);
  }

  void log_stats() const {
    platform::log(Level::notice, "collector",
                  LogLine("stats")
                      .kv("connections", static_cast<std::int64_t>(connections_))
                      .kv("nodes", static_cast<std::int64_t>(store_->stats().nodes))
                      .kv("batches", static_cast<std::int64_t>(batches_))
                      .kv("reports", static_cast<std::int64_t>(reports_))
                      .kv("rejections", static_cast<std::int64_t>(rejections_))
                      .kv("policy_versions", policy_versions())
                      .kv("policy_refusals", static_cast<std::int64_t>(policy_refusals_)));
  }

  void count_batch(const IngestResult& r) {
    ++batches_;
    reports_ += r.reports;
  }

  void stop(int code) {
    if (stopping_) {
      return;  // a failed group commit fails every session of it: one stop
    }
    stopping_ = true;
    notify(notifier_.stopping());
    watchdog_timer_.cancel();
    log_stats();
    exit_code_ = code;
    std::error_code ec;
    acceptor_.close(ec);
    signals_.cancel();
    hup_.cancel();
    stats_timer_.cancel();
    auto sessions = sessions_;
    for (auto& [node, s] : sessions) {
      if (auto p = s.lock()) {
        p->close("collector stopping");
      }
    }
    for (auto& w : anonymous_) {
      if (auto p = w.lock()) {
        p->close("collector stopping");
      }
    }
    io_.stop();
  }

  int exit_code() const { return exit_code_; }
  Store& store() { return *store_; }
  const ServeOptions& options() const { return options_; }

  // A node connects again (its old TCP connection half-open after a network cut): the new
  // session wins.
  void attach(const std::string& node, const std::shared_ptr<Session>& s) {
    auto it = sessions_.find(node);
    if (it != sessions_.end()) {
      if (auto old = it->second.lock(); old && old != s) {
        old->close("replaced by a new connection of the same node");
      }
    }
    sessions_[node] = s;
  }
  void detach(const std::string& node, const Session* s) {
    auto it = sessions_.find(node);
    if (it != sessions_.end()) {
      auto p = it->second.lock();
      if (!p || p.get() == s) {
        sessions_.erase(it);
      }
    }
    --connections_;
  }

  void log_stats_every_minute() {
    stats_timer_.expires_after(std::chrono::minutes(1));
    stats_timer_.async_wait([this](const std::error_code& ec) {
      if (!ec) {
        log_stats();
        notify(notifier_.status(status_line()));
        log_stats_every_minute();
      }
    });
  }

  void count_rejection(const std::string& why) {
    ++rejections_;
    platform::log(Level::warning, "collector", LogLine("rejected").kv("why", why));
  }

 private:
  // SIGHUP: the policy bundle is read again; a good new one goes to every session that takes
  // it, a bad one is logged and the one in force kept (never push what does not verify).
  void wait_hup() {
    hup_.async_wait([this](const std::error_code& ec, int) {
      if (ec) {
        return;
      }
      reload_policy();
      wait_hup();
    });
  }
  void reload_policy() {
    if (options_.policy_bundle.empty()) {
      platform::log(Level::notice, "collector",
                    LogLine("reload: no --policy-bundle, nothing to read"));
      return;
    }
    auto offer = load_policy_offer(options_);
    if (!offer) {
      platform::log(Level::err, "collector",
                    LogLine("reload: policy bundle refused, keeping the one in force")
                        .kv("err", offer.error().message()));
      return;
    }
    // The nodes that refused it are offered it again at their next session (a key configured
    // since, a rollback resolved): SIGHUP is the operator's way to ask.
    refused_.clear();
    if (offer_ && (*offer)->file_digest == offer_->file_digest) {
      platform::log(Level::notice, "collector",
                    LogLine("reload: policy bundle unchanged").kv("path", (*offer)->path));
      return;
    }
    offer_ = std::move(*offer);
    platform::log(Level::notice, "collector",
                  LogLine("reload: policy bundle loaded")
                      .kv("path", offer_->path)
                      .kv("policy_digest", short_hex(offer_->policy_digest)));
    auto sessions = sessions_;
    for (auto& [node, w] : sessions) {
      if (auto p = w.lock()) {
        p->offer_policy(*offer_);
      }
    }
  }

  // WATCHDOG=1 from the loop itself, twice per WatchdogSec=: a wedged loop gets restarted.
  void do_watchdog(std::chrono::microseconds period) {
    watchdog_timer_.async_wait([this, period](const std::error_code& ec) {
      if (ec) {
        return;
      }
      notify(notifier_.watchdog());
      watchdog_timer_.expires_after(period);
      do_watchdog(period);
    });
  }

  void notify(const platform::Result<void>& sent) {
    if (!sent && notify_failing_.complain()) {
      platform::log(Level::warning, "collector",
                    LogLine("cannot notify systemd").kv("err", sent.error().message()));
    } else if (sent) {
      notify_failing_.release();
    }
  }

  void accept() {
    acceptor_.async_accept([this](const std::error_code& ec, asio::ip::tcp::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted) {
          accept();
        }
        return;
      }
      if (connections_ >= options_.max_connections) {
        std::error_code ignored;
        socket.close(ignored);
        count_rejection("too many connections");
      } else {
        ++connections_;
        auto stream = std::make_unique<crypto::TlsStream>(tls_, std::move(socket));
        auto s = std::make_shared<Session>(*this, std::move(stream), io_);
        anonymous_.push_back(s);
        if (anonymous_.size() > 1024) {
          std::erase_if(anonymous_, [](const auto& w) { return w.expired(); });
        }
        s->start();
      }
      accept();
    });
  }

  asio::io_context& io_;
  ServeOptions options_;
  std::unique_ptr<Store> store_;
  std::shared_ptr<crypto::TlsContext> tls_;
  asio::ip::tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::signal_set hup_;
  std::shared_ptr<const PolicyOffer> offer_;          // null without --policy-bundle
  std::map<std::string, std::uint64_t> node_policy_;  // node -> policy version it last reported
  struct Refusal {
    crypto::Digest bundle;   // the bundle file refused
    crypto::Digest running;  // the policy the node ran then
    std::chrono::steady_clock::time_point at;
  };
  static constexpr auto kRefusalKept = std::chrono::hours(1);
  std::map<std::string, Refusal> refused_;  // node -> its last refusal of the bundle offered
  std::uint64_t policy_refusals_ = 0;
  std::map<std::string, std::weak_ptr<Session>> sessions_;
  std::vector<std::weak_ptr<Session>> anonymous_;  // every session, for stop()
  std::size_t connections_ = 0;
  asio::steady_timer stats_timer_;
  std::uint64_t rejections_ = 0;
  std::uint64_t batches_ = 0;
  std::uint64_t reports_ = 0;
  int exit_code_ = 0;
  bool stopping_ = false;
  platform::ServiceNotifier notifier_;
  platform::Complaint notify_failing_;
  asio::steady_timer watchdog_timer_;
};

void Session::start() {
  last_read_ = std::chrono::steady_clock::now();
  arm_idle();
  stream_->async_handshake([self = shared_from_this()](platform::Result<void> r) {
    if (!r) {
      self->server_.count_rejection(r.error().message());
      self->close("");
      return;
    }
    self->peer_ = self->stream_->remote_endpoint_text();
    self->node_ = self->stream_->peer_common_name();
    self->policy_frames_ = self->stream_->alpn_protocol() == protocol::kSessionAlpnPolicy;
    if (!protocol::valid_node_id(self->node_)) {
      self->server_.count_rejection(self->peer_ + ": certificate CN \"" + self->node_ +
                                    "\" is not a node id");
      self->close("");
      return;
    }
    // A takeover reads the node's records from the stream: off the loop, so that the other
    // sessions' reports go on meanwhile.
    self->server_.store().node_async(
        self->node_, self->stream_->peer_certificate()->public_key(),
        [self](platform::Result<NodeIngest*> ingest) { self->on_loaded(std::move(ingest)); });
  });
}

void Session::on_loaded(platform::Result<NodeIngest*> ingest) {
  if (closing_) {
    return;  // idle for too long while it loaded, or the collector stops
  }
  if (!ingest) {
    platform::log(
        Level::warning, "collector",
        LogLine("cannot load node state").kv("node", node_).kv("err", ingest.error().message()));
    close("node state unavailable");
    return;
  }
  ingest_ = *ingest;
  server_.attach(node_, shared_from_this());
  read();
}

void Session::arm_idle() {
  // Armed once per idle_timeout, not at every read: each read only notes the time, and the timer,
  // when it fires early, waits for the rest (a cancel and a re-arm per report were a timer-queue
  // update and an aborted handler each, at one report per session per interval).
  idle_.expires_at(last_read_ + server_.options().idle_timeout);
  idle_.async_wait([weak = weak_from_this()](const std::error_code& ec) {
    auto self = weak.lock();
    if (!self || ec || self->closing_) {
      return;
    }
    const auto idle = std::chrono::steady_clock::now() - self->last_read_;
    if (idle < self->server_.options().idle_timeout) {
      self->arm_idle();
      return;
    }
    self->close("idle for too long");
  });
}

void Session::read() {
  auto space = in_.space();
  stream_->async_read_some(asio::buffer(space.data(), space.size()),
                           [self = shared_from_this()](platform::Result<std::size_t> n) {
                             if (!n) {
                               self->close("");
                               return;
                             }
                             if (self->closing_) {
                               // Replaced (a load for a new connection of the node may have
                               // rebuilt the state ingest_ points at), or stopping.
                               return;
                             }
                             self->last_read_ = std::chrono::steady_clock::now();
                             self->on_data(*n);
                           });
}

void Session::on_data(std::size_t n) {
  in_.commit(n);
  frames_.clear();
  if (auto r = in_.frames(frames_); !r) {
    server_.count_rejection(node_ + ": " + r.error().message());
    close("bad frame");
    return;
  }
  std::vector<protocol::Frame>& batch = batch_;
  batch.clear();
  for (const protocol::Frame& frame : frames_) {
    if (!greeted_) {
      if (!handle_hello(frame)) {
        return;
      }
      continue;
    }
    switch (frame.kind) {
      case protocol::FrameKind::catalog:
      case protocol::FrameKind::report:
      case protocol::FrameKind::gap:
        batch.push_back(frame);
        break;
      case protocol::FrameKind::policy_status:
        if (policy_frames_) {
          if (!handle_policy_status(frame)) {
            return;
          }
          break;
        }
        [[fallthrough]];
      default:
        server_.count_rejection(node_ + ": unexpected frame kind " +
                                std::to_string(static_cast<int>(frame.kind)));
        close("unexpected frame");
        return;
    }
  }
  if (batch.empty()) {
    in_.consume();
    read();
    return;
  }
  // The frames point into in_: nothing is consumed or read until the sink is done with them.
  server_.store().commit(*ingest_, batch, [self = shared_from_this()](
                                              platform::Result<IngestResult> r) {
    self->on_committed(std::move(r));
  });
}

void Session::on_committed(platform::Result<IngestResult> r) {
  if (!r) {
    if (r.error().code == std::errc::resource_unavailable_try_again) {
      // The sink did not take the batch (JetStream: a failed publish, or another collector moved
      // the node's chain on), or the node has a batch in flight on another connection: nothing
      // is acknowledged; the agent reconnects and is told where the chain stands.
      platform::log(Level::warning, "collector",
                    LogLine("batch not stored").kv("node", node_).kv("err", r.error().message()));
      close("batch not stored");
      return;
    }
    // The sink failed: state in memory is ahead of it. Stop; a restart replays the sink.
    platform::log(Level::err, "collector", LogLine("sink failed").kv("err", r.error().message()));
    server_.stop(1);
    return;
  }
  server_.count_batch(*r);
  if (r->ack_seq > 0) {
    protocol::Bytes ack;
    protocol::encode(protocol::Ack{r->ack_seq}, ack);
    send(protocol::FrameKind::ack, ack);
  }
  if (!r->rejected.empty()) {
    server_.count_rejection(node_ + ": " + r->rejected);
    protocol::Bytes rej;
    protocol::encode(protocol::Reject{ingest_->have_seq(), r->rejected}, rej);
    send(protocol::FrameKind::reject, rej);
    close_after_write_ = true;
    return;
  }
  if (closing_) {
    return;
  }
  in_.consume();
  read();
}

bool Session::handle_hello(const protocol::Frame& f) {
  if (f.kind != protocol::FrameKind::hello) {
    server_.count_rejection(node_ + ": the session must start with hello");
    close("no hello");
    return false;
  }
  auto hello = protocol::decode_hello(f.payload);
  if (!hello || hello->node_id != node_) {
    server_.count_rejection(node_ + ": " + (hello ? "hello claims node \"" + hello->node_id +
                                                        "\" on a certificate for another"
                                                  : hello.error().message()));
    close("bad hello");
    return false;
  }
  greeted_ = true;
  protocol::Bytes w;
  protocol::encode(protocol::Welcome{ingest_->have_seq(), ingest_->have_digest(),
                                     server_.options().window},
                   w);
  send(protocol::FrameKind::welcome, w);
  platform::log(Level::info, "collector",
                LogLine("node connected")
                    .kv("node", node_)
                    .kv("peer", peer_)
                    .kv("have", static_cast<std::int64_t>(ingest_->have_seq()))
                    .kv("agent_newest", static_cast<std::int64_t>(hello->newest)));
  return true;
}

bool Session::handle_policy_status(const protocol::Frame& f) {
  auto st = protocol::decode_policy_status(f.payload);
  if (!st) {
    server_.count_rejection(node_ + ": " + st.error().message());
    close("bad policy status");
    return false;
  }
  server_.on_policy_status(node_, *st);
  policy_running_ = st->digest;
  if (st->result == protocol::PolicyStatus::Result::in_force && !policy_reported_) {
    policy_reported_ = true;
    if (const PolicyOffer* offer = server_.policy_offer()) {
      offer_policy(*offer);
    }
  }
  return true;
}

void Session::offer_policy(const PolicyOffer& offer) {
  // Only after the agent said what it runs: an agent without policy frames never hears of it,
  // one that runs this policy is left alone, and a bundle it refused is not pushed again in
  // this session (a new session, or a new bundle, tries again).
  if (!policy_frames_ || !policy_reported_ || closing_ || policy_running_ == offer.policy_digest ||
      policy_pushed_ == offer.file_digest) {
    return;
  }
  if (server_.refused_before(node_, offer, policy_running_)) {
    policy_pushed_ = offer.file_digest;  // said once per session
    platform::log(Level::info, "collector",
                  LogLine("policy bundle not pushed again: the node refused it")
                      .kv("node", node_)
                      .kv("bundle", short_hex(offer.file_digest)));
    return;
  }
  policy_pushed_ = offer.file_digest;
  send(protocol::FrameKind::policy_bundle, offer.payload);
  platform::log(Level::info, "collector",
                LogLine("policy bundle pushed")
                    .kv("node", node_)
                    .kv("bundle", short_hex(offer.file_digest))
                    .kv("running", short_hex(policy_running_)));
}

void Session::send(protocol::FrameKind kind, const protocol::Bytes& payload) {
  protocol::append_frame(queued_, kind, payload);
  flush();
}

void Session::flush() {
  if (writing_ || queued_.empty() || closing_) {
    return;
  }
  out_.swap(queued_);
  queued_.clear();
  writing_ = true;
  stream_->async_write(asio::buffer(out_), [self = shared_from_this()](platform::Result<void> r) {
    self->writing_ = false;
    if (!r) {
      self->close("");
      return;
    }
    if (!self->queued_.empty()) {
      self->flush();
    } else if (self->close_after_write_) {
      self->close("rejected");
    }
  });
}

void Session::close(const std::string& why) {
  if (closing_) {
    return;
  }
  closing_ = true;
  idle_.cancel();
  if (!why.empty() && !node_.empty()) {
    platform::log(Level::info, "collector", LogLine("node disconnected").kv("node", node_).kv("why", why));
  }
  auto self = shared_from_this();
  stream_->async_shutdown([self] { self->server_.detach(self->node_, self.get()); });
}

}  // namespace

int serve(const ServeOptions& o) {
  auto ca = crypto::Certificate::load_file(o.ca);
  auto cert = ca ? crypto::Certificate::load_file(o.cert) : tl::unexpected(ca.error());
  auto key = cert ? crypto::load_private_key_file(o.key) : tl::unexpected(cert.error());
  if (!key) {
    std::fprintf(stderr, "gridnode-collector serve: %s\n", key.error().message().c_str());
    return 2;
  }
  // Before the sink is opened: a bundle the collector cannot verify stops it at once.
  platform::Result<std::shared_ptr<const PolicyOffer>> offer = nullptr;
  if (!o.policy_bundle.empty()) {
    offer = o.policy_key.empty()
                ? platform::fail(std::errc::invalid_argument, "--policy-bundle needs --policy-key")
                : load_policy_offer(o);
  } else if (!o.policy_key.empty()) {
    offer = platform::fail(std::errc::invalid_argument, "--policy-key without --policy-bundle");
  }
  if (!offer) {
    std::fprintf(stderr, "gridnode-collector serve: %s\n", offer.error().message().c_str());
    return 2;
  }
  crypto::TlsOptions t{.server = true,
                       .ca = *ca,
                       .cert = *cert,
                       .key = *key,
                       .server_name = {},
                       .pinned_server_key = std::nullopt,
                       .handshake_timeout = std::chrono::seconds(10),
                       .shutdown_timeout = std::chrono::seconds(2),
                       .alpn = {std::string(protocol::kSessionAlpnPolicy)}};
  auto tls = crypto::TlsContext::create(std::move(t));
  if (!tls) {
    std::fprintf(stderr, "gridnode-collector serve: %s\n", tls.error().message().c_str());
    return 2;
  }
  // The senders tail the JSONL file; a stream's senders are export's (its archive is theirs).
  platform::Result<std::vector<RemoteTarget>> targets = make_remote_targets(o.remote_write);
  if (targets && !targets->empty() && is_stream_sink(o.sink)) {
    targets = platform::fail(std::errc::invalid_argument,
                             "--remote-write needs a JSONL --sink (its queue); with a nats:// sink, "
                             "run `gridnode-collector export --from " + o.sink +
                                 " --sink FILE --remote-write URL`");
  }
  if (!targets) {
    std::fprintf(stderr, "gridnode-collector serve: %s\n", targets.error().message().c_str());
    return 2;
  }
  asio::io_context io{1};
  const IngestOptions ingest{.verify_all = o.verify_all};
  auto sink = open_sink(io, o.sink, o.jetstream);
  auto store = sink ? Store::open(std::move(*sink), ingest)
                    : platform::Result<std::unique_ptr<Store>>(tl::unexpected(sink.error()));
  if (!store) {
    std::fprintf(stderr, "gridnode-collector serve: %s\n", store.error().message().c_str());
    return 2;
  }
  const auto& st = (*store)->stats();
  platform::log(Level::notice, "collector",
                LogLine("sink opened")
                    .kv("sink", o.sink)
                    .kv("nodes", static_cast<std::int64_t>(st.nodes))
                    .kv("records", static_cast<std::int64_t>(st.records_replayed))
                    .kv("unreadable", static_cast<std::int64_t>(st.lines_unreadable))
                    .kv("cut_bytes", static_cast<std::int64_t>(st.bytes_cut)));
  Server server(io, o, std::move(*store), std::move(*tls),
                platform::ServiceNotifier::from_environment());
  if (!o.policy_bundle.empty()) {
    server.set_policy_offer(std::move(*offer));
    platform::log(Level::notice, "collector",
                  LogLine("policy bundle loaded")
                      .kv("path", o.policy_bundle)
                      .kv("policy_digest", short_hex(server.policy_offer()->policy_digest)));
  }
  if (auto r = server.start(); !r) {
    std::fprintf(stderr, "gridnode-collector serve: %s\n", r.error().message().c_str());
    return 2;
  }
  platform::log(Level::notice, "collector", LogLine("listening").kv("on", o.listen));
  // On their own threads, after the sink was opened (and its torn tail cut): the acknowledgement
  // to agents never waits for a target.
  RemoteWriters writers;
  if (auto r = writers.start(*targets, o.sink); !r) {
    std::fprintf(stderr, "gridnode-collector serve: %s\n", r.error().message().c_str());
    return 2;
  }
  io.run();
  writers.stop();
  return server.exit_code();
}

}  // namespace gridnode::collector
