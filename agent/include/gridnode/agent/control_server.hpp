#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include "gridnode/platform/peer.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::agent {

// The technician's door: a Unix socket speaking newline-delimited JSON (docs/control.md).
// Each connection is authorised once, from the kernel's record of the peer (SO_PEERCRED,
// SO_PEERGROUPS): root, the agent's own user, and members of the configured group may ask;
// anyone else gets one refusal line, the attempt is logged, and the connection is closed.
// Loop thread only.
class ControlServer {
 public:
  // Takes the answer to one request, on the loop thread, once. The session reads no further
  // request until it has run: a connection's answers come in the order of its requests.
  using Reply = std::function<void(nlohmann::json answer)>;
  // Answers one request; `peer` says who asks. Must not block: an answer that needs work (a
  // reload reading files on a worker) calls `reply` later, from the loop. A reply after stop()
  // is dropped.
  using Handler = std::function<void(const nlohmann::json& request,
                                     const platform::PeerCredentials& peer, Reply reply)>;

  struct Options {
    std::string path;
    unsigned mode = 0660;
    std::optional<gid_t> group;  // members may ask; nullopt: root and our own user only
    std::string group_name;      // for messages
    std::chrono::milliseconds idle_timeout{10000};
    std::size_t max_request_bytes = 64 * 1024;
    std::size_t max_sessions = 32;
  };

  ControlServer(asio::io_context& io, Options options, Handler handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds and listens. A stale socket file left by a crash is replaced; a live agent already
  // answering there is an error (address_in_use).
  [[nodiscard]] platform::Result<void> start();
  // Closes the listener and every session, and removes the socket file.
  void stop();

  // Who may ask, changed on reload.
  void set_group(std::optional<gid_t> group, std::string name);
  // Further groups let in (those the policy's [access] section grants commands to), and their
  // names for the refusal's text; which commands they may run is the handler's business.
  void set_extra_groups(std::vector<gid_t> groups, std::vector<std::string> names = {}) {
    extra_groups_ = std::move(groups);
    extra_group_names_ = std::move(names);
  }

  // Whether `peer` may ask at all, and if not, the reason told to them: one line naming every
  // group that is let in.
  std::optional<std::string> refusal(const platform::PeerCredentials& peer) const;

  // Called on the loop for every connection refused at the door, with the reason told (the
  // agent raises the policy's `access` event, as a refused command does).
  using RefusalHook =
      std::function<void(const platform::PeerCredentials& peer, const std::string& why)>;
  void on_refused(RefusalHook hook) { on_refused_ = std::move(hook); }

  std::size_t refused_total() const { return refused_total_; }

  class Session;

 private:
  void do_accept();

  asio::io_context& io_;
  Options options_;
  Handler handler_;
  asio::local::stream_protocol::acceptor acceptor_;
  std::set<std::shared_ptr<Session>> sessions_;
  std::vector<gid_t> extra_groups_;
  std::vector<std::string> extra_group_names_;
  RefusalHook on_refused_;
  std::size_t refused_total_ = 0;
  bool bound_ = false;
};

}  // namespace gridnode::agent
