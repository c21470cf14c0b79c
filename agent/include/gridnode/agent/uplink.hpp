#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "gridnode/agent/spool.hpp"
#include "gridnode/crypto/tls.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/session.hpp"

namespace gridnode::agent {

// One record the uplink sends: the spool's.
using OutRecord = SpoolRecord;

// What the uplink streams from: the spool.
class UplinkSource {
 public:
  virtual ~UplinkSource() = default;
  // The catalog in force, then the records with seq > after_seq in order, up to about
  // max_bytes (at least one record when there is one).
  [[nodiscard]] virtual platform::Result<void> read(std::uint64_t after_seq, std::size_t max_bytes,
                                                    std::vector<OutRecord>& out) = 0;
  // Everything up to seq is durable upstream: it may go.
  virtual void acknowledge(std::uint64_t seq) = 0;
  virtual std::uint64_t first_unacked() const = 0;
  virtual std::uint64_t newest() const = 0;
};

// Where bundles the collector pushes go (docs/protocol.md §6b): the policy engine, behind this
// so that the uplink knows nothing of policies. Loop thread only.
class UplinkPolicy {
 public:
  virtual ~UplinkPolicy() = default;
  // The policy in force: its version and digest, reported after welcome and in every answer.
  virtual std::pair<std::uint64_t, crypto::Digest> in_force() const = 0;
  // Verifies and applies `bundle` without blocking the loop; later, on the loop, `answer` gets
  // applied, in_force (already) or refused with the reason. `origin`: "uplink HOST:PORT".
  virtual void offer(
      std::string bundle, std::string origin,
      std::function<void(protocol::PolicyStatus::Result, const std::string& reason)> answer) = 0;
};

struct UplinkOptions {
  std::vector<std::string> endpoints;  // HOST:PORT, [v6]:PORT; tried in turn
  crypto::Certificate ca;              // the grid CA
  crypto::Certificate cert;            // the node's certificate and key
  crypto::PrivateKey key;
  std::optional<crypto::Digest> pinned_server_key;
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{60000};
  std::chrono::seconds idle_timeout{90};  // no ack while reports are in flight
  std::size_t batch_bytes = 256 * 1024;
};

// Streams the spool to a collector over mutual TLS (docs/protocol.md §6a): connects to one of
// the endpoints, says hello, sends from where the collector's welcome says it stands, keeps at
// most `window` reports in flight, lets the spool drop what is acknowledged, and reconnects with
// exponential backoff and jitter, moving on to the next endpoint after a failure. It offers the
// policy frames by ALPN; when the collector agrees, it reports the policy in force after
// welcome and hands every pushed bundle to the UplinkPolicy, answering with the outcome. Loop
// thread only; nothing blocks.
class Uplink {
 public:
  Uplink(asio::io_context& io, UplinkOptions options, std::string node_id, UplinkSource& source);
  ~Uplink();
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  [[nodiscard]] platform::Result<void> start();
  void stop();
  // New records are in the spool: send them if the window allows.
  void wake();
  // Where pushed bundles go (not owned; outlives the uplink). Null: none are taken (the policy
  // in force is not reported, so a collector pushes nothing; a push is refused).
  void set_policy(UplinkPolicy* policy) { policy_ = policy; }

  bool connected() const { return state_ == State::streaming; }
  nlohmann::json status_json() const;

 private:
  enum class State : std::uint8_t { idle, connecting, handshaking, greeting, streaming, waiting };
  struct Endpoint {
    std::string text;
    std::string host;
    std::string port;
    std::shared_ptr<crypto::TlsContext> tls;
  };

  void connect();
  void on_connected(asio::ip::tcp::socket socket);
  void fail(const std::string& why);
  // Every handler of the connection goes through this: it runs only while the uplink exists (a
  // read the TLS stream completes as it closes, or a policy answer the engine posts back, may
  // run after Agent::stop destroyed it) and while the session that started it is current.
  template <class F>
  auto in_session(F f) {
    return [this, alive = std::weak_ptr<const bool>(alive_), session = session_,
            f = std::move(f)](auto&&... args) mutable {
      if (!alive.expired() && session == session_) {
        f(std::forward<decltype(args)>(args)...);
      }
    };
  }
  void schedule_retry();
  void read();
  void on_data(std::size_t n);
  bool on_frame(const protocol::Frame& f);
  void pump();
  void write_queued();
  bool on_policy_bundle(const protocol::Frame& f);
  void send_policy_status(protocol::PolicyStatus::Result result, const crypto::Digest& offered,
                          const std::string& reason);

  asio::io_context& io_;
  UplinkOptions options_;
  std::string node_;
  UplinkSource& source_;
  std::vector<Endpoint> endpoints_;
  std::size_t current_ = 0;
  State state_ = State::idle;
  bool stopped_ = false;
  std::uint64_t session_ = 0;  // bumps on every (re)connect: late handlers of old ones are ignored
  // Held weakly by every handler (in_session).
  std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);

  asio::ip::tcp::resolver resolver_;
  asio::steady_timer timer_;  // connect deadline, retry backoff, idle
  std::unique_ptr<crypto::TlsStream> stream_;
  std::chrono::milliseconds backoff_;
  std::mt19937_64 jitter_;

  protocol::FrameAssembler in_;
  std::vector<protocol::Frame> frames_;
  std::vector<std::uint8_t> out_;
  std::vector<std::uint8_t> queued_;
  bool writing_ = false;
  std::vector<OutRecord> records_;  // scratch for source reads

  std::uint32_t window_ = 1;
  std::uint64_t sent_ = 0;   // highest seq sent in this session
  std::uint64_t acked_ = 0;  // highest seq acknowledged
  crypto::Digest catalog_sent_{};
  bool catalog_sent_valid_ = false;
  UplinkPolicy* policy_ = nullptr;
  bool policy_frames_ = false;  // this session's ALPN is kSessionAlpnPolicy

  // For status.
  std::string connected_to_;
  std::string last_error_;
  std::uint64_t connects_ = 0;
  std::uint64_t rejects_ = 0;
  std::uint64_t policy_pushes_ = 0;  // bundles received from collectors
  std::chrono::system_clock::time_point last_ack_time_{};
};

// The spool as the uplink's source.
class SpoolSource final : public UplinkSource {
 public:
  explicit SpoolSource(Spool& spool) : spool_(spool) {}
  platform::Result<void> read(std::uint64_t after_seq, std::size_t max_bytes,
                              std::vector<OutRecord>& out) override {
    return spool_.read(after_seq, max_bytes, out);
  }
  void acknowledge(std::uint64_t seq) override;
  std::uint64_t first_unacked() const override { return spool_.stats().acked_seq + 1; }
  std::uint64_t newest() const override { return spool_.stats().newest_seq; }

 private:
  Spool& spool_;
};

}  // namespace gridnode::agent
