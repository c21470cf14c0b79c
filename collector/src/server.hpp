#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "gridnode/collector/jetstream.hpp"
#include "gridnode/collector/remote_target.hpp"

namespace gridnode::collector {

struct ServeOptions {
  std::string listen = "127.0.0.1:4443";  // HOST:PORT, [v6]:PORT
  std::string ca, cert, key;              // the grid CA; the collector's certificate and key
  std::string sink;                       // FILE.jsonl, or nats://HOST:PORT[,…] (JetStream)
  JetStreamOptions jetstream;             // with a nats:// sink (servers set from it)
  bool verify_all = false;
  std::uint32_t window = 256;             // reports an agent may have in flight
  std::chrono::seconds idle_timeout{120};
  std::size_t max_connections = 10000;
  // A signed policy bundle pushed to every agent that takes policy frames and runs another
  // policy (docs/protocol.md §6b); re-read on SIGHUP. It must verify with policy_key, the
  // grid's policy public key (PEM), or serve() refuses to start (and a reload keeps the old).
  std::string policy_bundle;
  std::string policy_key;
  // Prometheus remote_write targets, fed from the JSONL sink (docs/collector.md). Refused with a
  // nats:// sink: `export --remote-write` sends the stream.
  RemoteWriteFlags remote_write;
};

// `gridnode-collector serve`: terminates mutual TLS, takes each node's id from its client
// certificate, verifies and stores its reports (Store), acknowledges what is durable, pushes the
// policy bundle if one is given and logs what each agent answers. Runs until SIGTERM/SIGINT;
// SIGHUP re-reads the policy bundle. Exit status 0 on a signal, 1 when the sink fails (a restart
// replays it), 2 on bad options (a policy bundle that does not verify with the policy key).
int serve(const ServeOptions& options);

}  // namespace gridnode::collector
