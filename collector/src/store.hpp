#pragma once

#include <asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "ingest.hpp"
#include "jetstream.hpp"
#include "records.hpp"
#include "sink.hpp"

namespace gridnode::collector {

// The collector's state: one NodeIngest per node, and the sink every verified record goes to.
// With a JSONL sink, opening it replays the file, so after a crash (kill -9 included) every node
// resumes exactly after the last record that reached the sink. With JetStream, a node's chain
// position is the bucket's, read when the node connects: any collector can take any node over.
class Store {
 public:
  struct Stats {
    std::uint64_t nodes = 0;
    std::uint64_t records_replayed = 0;
    std::uint64_t lines_unreadable = 0;  // whole lines that were not a record (skipped)
    std::uint64_t bytes_cut = 0;         // torn tail cut at open
  };

  [[nodiscard]] static platform::Result<std::unique_ptr<Store>> open_jsonl(const std::string& path,
                                                                           IngestOptions options);
  [[nodiscard]] static platform::Result<std::unique_ptr<Store>> open_jetstream(
      asio::io_context& io, const JetStreamOptions& jetstream, IngestOptions options);

  // The node's state (created on first sight), with the key of its current certificate. With
  // JetStream it is rebuilt from the stream (its end, the bucket's index of where to read from)
  // when another collector extended the node since this one last saw it: a round trip on the
  // calling thread, a few more and a replay on a takeover, bounded by JetStreamOptions::timeout;
  // any error or timeout fails (the caller refuses the session, the agent retries).
  [[nodiscard]] platform::Result<NodeIngest*> node(const std::string& node_id,
                                                   const crypto::PublicKey& key);

  // Verifies a batch for `node` and hands what it accepts to the sink; `done` runs once it is
  // durable (JSONL: before commit returns; JetStream: later, on the loop). The result's ack_seq
  // may be acknowledged to the agent only when `done` got a value. An error with
  // errc::resource_unavailable_try_again means "close this connection, the agent retries" (the
  // node's state is reloaded when it comes back); any other error means the sink failed.
  using Done = std::function<void(platform::Result<IngestResult>)>;
  void commit(NodeIngest& node, std::span<const protocol::Frame> frames, Done done);

  const Stats& stats() const { return stats_; }
  std::string describe() const;

 private:
  struct Slot {
    std::unique_ptr<NodeIngest> ingest;
    ChainState chain;    // JetStream: the node's position as this collector last wrote or read it
    bool stale = false;  // JetStream: memory may differ from the stream; reload on next connection
    bool busy = false;   // a batch is in flight
    // Bumped when a load replaces the node's state: a batch committed before must not write its
    // position over the state that replaced it (the load may have read the stream before the
    // batch's records landed, and the two would then disagree).
    std::uint64_t generation = 0;
  };
  Store(IngestOptions options) : options_(options) {}
  void replay(std::string_view line);
  void replay_into(NodeIngest& node, std::string_view line);

  IngestOptions options_;
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<JetStreamSink> jetstream_;
  std::map<std::string, Slot> nodes_;
  std::string lines_;  // reused batch buffer
  RecordKeys keys_;    // reused by replay
  Stats stats_;
};

}  // namespace gridnode::collector
