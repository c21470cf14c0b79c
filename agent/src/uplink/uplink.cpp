#include "gridnode/agent/uplink.hpp"

#include <asio/connect.hpp>
#include <tuple>

#include "gridnode/platform/log.hpp"
#include "gridnode/protocol/session.hpp"

namespace gridnode::agent {
namespace {

using platform::Level;
using platform::LogLine;

std::string_view to_string_state(int s) {
  static constexpr std::string_view names[] = {"idle",     "connecting", "handshaking",
                                               "greeting", "streaming",  "waiting"};
  return names[s];
}

}  // namespace

Uplink::Uplink(asio::io_context& io, UplinkOptions options, std::string node_id,
               UplinkSource& source)
    : io_(io),
      options_(std::move(options)),
      node_(std::move(node_id)),
      source_(source),
      resolver_(io),
      timer_(io),
      backoff_(options_.backoff_min),
      jitter_(std::random_device{}()) {}

Uplink::~Uplink() { stop(); }

platform::Result<void> Uplink::start() {
  if (options_.endpoints.empty()) {
    return platform::fail(std::errc::invalid_argument, "no upstream endpoint");
  }
  for (const auto& e : options_.endpoints) {
    auto colon = e.rfind(':');
    if (colon == std::string::npos || colon + 1 == e.size()) {
      return platform::fail(std::errc::invalid_argument,
                            "upstream \"" + e + "\": HOST:PORT expected");
    }
    Endpoint ep;
    ep.text = e;
    ep.host = e.substr(0, colon);
    ep.port = e.substr(colon + 1);
    if (ep.host.size() >= 2 && ep.host.front() == '[' && ep.host.back() == ']') {
      ep.host = ep.host.substr(1, ep.host.size() - 2);
    }
    crypto::TlsOptions t{.server = false,
                         .ca = options_.ca,
                         .cert = options_.cert,
                         .key = options_.key,
                         .server_name = ep.host,
                         .pinned_server_key = options_.pinned_server_key,
                         .handshake_timeout = options_.connect_timeout,
                         .shutdown_timeout = std::chrono::seconds(2),
                         .alpn = {std::string(protocol::kSessionAlpnPolicy)}};
    auto ctx = crypto::TlsContext::create(std::move(t));
    if (!ctx) {
      return platform::fail(ctx.error().code, "upstream " + e + ": " + ctx.error().context);
    }
    ep.tls = std::move(*ctx);
    endpoints_.push_back(std::move(ep));
  }
  stopped_ = false;
  connect();
  return {};
}

void Uplink::stop() {
  stopped_ = true;
  ++session_;
  timer_.cancel();
  resolver_.cancel();
  if (stream_) {
    stream_->close();
    stream_.reset();
  }
  state_ = State::idle;
}

void Uplink::connect() {
  if (stopped_) {
    return;
  }
  ++session_;  // the handlers below belong to this attempt
  state_ = State::connecting;
  const Endpoint& ep = endpoints_[current_];
  auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
  timer_.expires_after(options_.connect_timeout);
  timer_.async_wait(in_session([this, socket](const std::error_code& ec) {
    if (!ec && state_ == State::connecting) {
      std::error_code ignored;
      resolver_.cancel();
      socket->close(ignored);
    }
  }));
  resolver_.async_resolve(
      ep.host, ep.port,
      in_session([this, socket](const std::error_code& ec,
                                asio::ip::tcp::resolver::results_type results) {
        if (ec) {
          fail("cannot resolve " + endpoints_[current_].text + ": " + ec.message());
          return;
        }
        asio::async_connect(
            *socket, results,
            in_session([this, socket](const std::error_code& ec2, const asio::ip::tcp::endpoint&) {
              if (ec2) {
                fail("cannot connect to " + endpoints_[current_].text + ": " + ec2.message());
                return;
              }
              on_connected(std::move(*socket));
            }));
      }));
}

void Uplink::on_connected(asio::ip::tcp::socket socket) {
  timer_.cancel();
  state_ = State::handshaking;
  stream_ = std::make_unique<crypto::TlsStream>(endpoints_[current_].tls, std::move(socket));
  stream_->async_handshake(in_session([this](platform::Result<void> r) {
    if (!r) {
      fail(r.error().message());
      return;
    }
    state_ = State::greeting;
    // A collector from before the policy frames ignores the ALPN offer: none are sent then.
    policy_frames_ = stream_->alpn_protocol() == protocol::kSessionAlpnPolicy;
    in_ = protocol::FrameAssembler{};
    writing_ = false;
    queued_.clear();
    catalog_sent_valid_ = false;
    protocol::Bytes hello;
    protocol::encode(protocol::Hello{node_, source_.first_unacked(), source_.newest()}, hello);
    protocol::append_frame(queued_, protocol::FrameKind::hello, hello);
    write_queued();
    read();
  }));
}

void Uplink::fail(const std::string& why) {
  if (stopped_) {
    return;
  }
  ++session_;  // late handlers of this connection are ignored from here on
  if (why != last_error_) {
    platform::log(Level::warning, "uplink", LogLine("connection failed").kv("err", why));
  }
  last_error_ = why;
  if (stream_) {
    stream_->close();
    // Destroying it now is safe: its pending handlers are aborted and ignored (in_session).
    stream_.reset();
  }
  connected_to_.clear();
  state_ = State::waiting;
  current_ = (current_ + 1) % endpoints_.size();
  schedule_retry();
}

void Uplink::schedule_retry() {
  // Exponential backoff with jitter (0.5x to 1.5x), so that a thousand agents cut off together
  // do not come back together.
  std::uniform_real_distribution<double> spread(0.5, 1.5);
  auto delay = std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(backoff_.count()) * spread(jitter_)));
  backoff_ = std::min(backoff_ * 2, options_.backoff_max);
  timer_.expires_after(delay);
  timer_.async_wait(in_session([this](const std::error_code& ec) {
    if (!ec) {
      connect();
    }
  }));
}

void Uplink::read() {
  auto space = in_.space();
  stream_->async_read_some(asio::buffer(space.data(), space.size()),
                           in_session([this](platform::Result<std::size_t> n) {
                             if (!n) {
                               fail(n.error().message());
                               return;
                             }
                             on_data(*n);
                           }));
}

void Uplink::on_data(std::size_t n) {
  const std::uint64_t session = session_;
  in_.commit(n);
  frames_.clear();
  if (auto r = in_.frames(frames_); !r) {
    fail("collector: " + r.error().message());
    return;
  }
  for (const auto& f : frames_) {
    if (!on_frame(f) || session != session_) {
      return;
    }
  }
  in_.consume();
  read();
}

bool Uplink::on_frame(const protocol::Frame& f) {
  switch (f.kind) {
    case protocol::FrameKind::welcome: {
      auto w = protocol::decode_welcome(f.payload);
      if (!w || state_ != State::greeting) {
        fail(w ? "unexpected welcome" : "collector: " + w.error().message());
        return false;
      }
      if (w->have_seq > source_.newest()) {
        fail("the collector already holds report " + std::to_string(w->have_seq) +
             " of this node, the newest here is " + std::to_string(source_.newest()) +
             ": was this node's state directory reset?");
        return false;
      }
      window_ = w->window;
      sent_ = w->have_seq;
      if (w->have_seq > acked_) {
        acked_ = w->have_seq;
        source_.acknowledge(acked_);  // the collector holds them: the spool may let them go
      }
      if (sent_ < acked_) {
        sent_ = acked_;
      }
      state_ = State::streaming;
      ++connects_;
      backoff_ = options_.backoff_min;
      connected_to_ = endpoints_[current_].text;
      last_error_.clear();
      platform::log(Level::notice, "uplink",
                    LogLine("connected")
                        .kv("to", connected_to_)
                        .kv("resume_after", static_cast<std::int64_t>(w->have_seq)));
      if (policy_frames_ && policy_ != nullptr) {
        // Before any report: the collector decides from it whether to push its bundle.
        send_policy_status(protocol::PolicyStatus::Result::in_force, {}, {});
      }
      pump();
      return true;
    }
    case protocol::FrameKind::ack: {
      auto a = protocol::decode_ack(f.payload);
      if (!a) {
        fail("collector: " + a.error().message());
        return false;
      }
      if (a->seq > acked_) {
        acked_ = a->seq;
        source_.acknowledge(acked_);
        last_ack_time_ = std::chrono::system_clock::now();
      }
      pump();
      return true;
    }
    case protocol::FrameKind::reject: {
      auto r = protocol::decode_reject(f.payload);
      ++rejects_;
      if (!r) {
        fail("collector: " + r.error().message());
        return false;
      }
      // The collector keeps up to r->seq; the report after it cannot be made acceptable (it is
      // signed as it is): it goes, the chain shows the gap upstream, and streaming goes on.
      platform::log(Level::err, "uplink",
                    LogLine("collector rejected a report")
                        .kv("seq", static_cast<std::int64_t>(r->seq + 1))
                        .kv("why", r->reason));
      acked_ = std::max(acked_, r->seq + 1);
      source_.acknowledge(acked_);
      fail("rejected: " + r->reason);
      return false;
    }
    case protocol::FrameKind::policy_bundle:
      if (policy_frames_ && state_ == State::streaming) {
        return on_policy_bundle(f);
      }
      [[fallthrough]];
    default:
      fail("collector sent an unexpected frame of kind " +
           std::to_string(static_cast<int>(f.kind)));
      return false;
  }
}

bool Uplink::on_policy_bundle(const protocol::Frame& f) {
  auto push = protocol::decode_policy_push(f.payload);
  if (!push) {
    fail("collector: " + push.error().message());
    return false;
  }
  ++policy_pushes_;
  const crypto::Digest offered = crypto::sha256(std::string_view(push->bundle));
  if (policy_ == nullptr) {
    send_policy_status(protocol::PolicyStatus::Result::refused, offered,
                       "this agent takes no pushed policy");
    return true;
  }
  platform::log(Level::info, "uplink",
                LogLine("policy bundle received")
                    .kv("from", connected_to_)
                    .kv("bytes", static_cast<std::int64_t>(push->bundle.size())));
  // Verified on the policy engine's worker; the answer comes back on the loop, and only to the
  // session that asked (a later one reports the policy in force after its welcome anyway).
  policy_->offer(
      std::move(push->bundle), "uplink " + connected_to_,
      in_session([this, offered](protocol::PolicyStatus::Result result, const std::string& reason) {
        if (state_ == State::streaming) {
          send_policy_status(result, offered, reason);
        }
      }));
  return true;
}

void Uplink::send_policy_status(protocol::PolicyStatus::Result result,
                                const crypto::Digest& offered, const std::string& reason) {
  // A reason is a line or two; the cut keeps the frame far below the string limit whatever
  // an error message quotes.
  protocol::PolicyStatus st{.result = result, .offered = offered, .reason = reason.substr(0, 1024)};
  if (policy_ != nullptr) {
    std::tie(st.version, st.digest) = policy_->in_force();
  }
  protocol::Bytes payload;
  protocol::encode(st, payload);
  protocol::append_frame(queued_, protocol::FrameKind::policy_status, payload);
  write_queued();
}

void Uplink::wake() {
  if (state_ == State::streaming) {
    pump();
  }
}

void Uplink::pump() {
  if (state_ != State::streaming || writing_) {
    return;  // the write's completion pumps again
  }
  while (sent_ - acked_ < window_ && queued_.size() < options_.batch_bytes) {
    records_.clear();
    if (auto r = source_.read(sent_, options_.batch_bytes, records_); !r) {
      platform::log(Level::err, "uplink",
                    LogLine("cannot read the spool").kv("err", r.error().message()));
      break;
    }
    bool progress = false;
    for (auto& rec : records_) {
      if (rec.kind == protocol::FrameKind::catalog) {
        crypto::Digest d = crypto::sha256(std::span<const std::uint8_t>(rec.payload));
        if (catalog_sent_valid_ && d == catalog_sent_) {
          continue;
        }
        catalog_sent_ = d;
        catalog_sent_valid_ = true;
        protocol::append_frame(queued_, rec.kind, rec.payload);
        continue;
      }
      if (rec.seq <= sent_ || sent_ - acked_ >= window_) {
        continue;
      }
      protocol::append_frame(queued_, rec.kind, rec.payload);
      sent_ = rec.seq;
      progress = true;
    }
    if (!progress) {
      break;
    }
  }
  write_queued();
}

void Uplink::write_queued() {
  if (writing_ || queued_.empty() || !stream_) {
    return;
  }
  out_.swap(queued_);
  queued_.clear();
  writing_ = true;
  stream_->async_write(asio::buffer(out_), in_session([this](platform::Result<void> r) {
                         writing_ = false;
                         if (!r) {
                           fail(r.error().message());
                           return;
                         }
                         if (!queued_.empty()) {
                           write_queued();
                         } else {
                           pump();
                         }
                       }));
  // No ack for a while with reports in flight: the collector or the path is stuck.
  if (sent_ > acked_) {
    timer_.expires_after(options_.idle_timeout);
    timer_.async_wait(in_session([this](const std::error_code& ec) {
      if (!ec && sent_ > acked_) {
        fail("no acknowledgement for " + std::to_string(options_.idle_timeout.count()) + " s");
      }
    }));
  }
}

void SpoolSource::acknowledge(std::uint64_t seq) {
  if (auto r = spool_.ack(seq); !r) {
    platform::log(Level::err, "uplink",
                  LogLine("cannot acknowledge").kv("err", r.error().message()));
  }
}

nlohmann::json Uplink::status_json() const {
  nlohmann::json endpoints = nlohmann::json::array();
  for (const auto& e : endpoints_) {
    endpoints.push_back(e.text);
  }
  nlohmann::json j = {{"state", to_string_state(static_cast<int>(state_))},
                      {"endpoints", std::move(endpoints)},
                      {"acked_seq", acked_},
                      {"sent_seq", sent_},
                      {"window", window_},
                      {"connects_total", connects_},
                      {"rejects_total", rejects_},
                      {"policy_pushes_total", policy_pushes_}};
  if (state_ == State::streaming) {
    j["policy_frames"] = policy_frames_;
  }
  if (!connected_to_.empty()) {
    j["connected_to"] = connected_to_;
  }
  if (last_ack_time_.time_since_epoch().count() != 0) {
    j["last_ack_age_seconds"] =
        std::chrono::duration<double>(std::chrono::system_clock::now() - last_ack_time_).count();
  }
  if (!last_error_.empty()) {
    j["error"] = last_error_;
  }
  return j;
}

}  // namespace gridnode::agent
