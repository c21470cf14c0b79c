#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gridnode/collector/ingest.hpp"
#include "gridnode/collector/sink.hpp"

namespace gridnode::collector {

// The collector's state: one NodeIngest per node, and the sink every verified record goes to
// (which one it is, the Store does not know). Opening it replays what the sink recovers at
// start (a JSONL file: all of it, so that after a crash, kill -9 included, every node resumes
// exactly after the last record that reached the sink); a node's state is also rebuilt from the
// sink when it connects and the sink says another writer moved it on (JetStream: any collector
// can take any node over).
class Store {
 public:
  struct Stats {
    std::uint64_t nodes = 0;
    std::uint64_t records_replayed = 0;
    std::uint64_t lines_unreadable = 0;  // whole records that were not readable (skipped)
    std::uint64_t bytes_cut = 0;         // torn tail cut at open
  };

  [[nodiscard]] static platform::Result<std::unique_ptr<Store>> open(std::unique_ptr<Sink> sink,
                                                                     IngestOptions options);

  // The node's state (created on first sight), with the key of its current certificate, rebuilt
  // from the sink when the sink's load says so (Sink::load: may block the calling thread).
  // Fails (the caller refuses the session, the agent retries) when the load fails, and while a
  // batch of the node is in flight: its welcome would name records not yet durable.
  [[nodiscard]] platform::Result<NodeIngest*> node(const std::string& node_id,
                                                   const crypto::PublicKey& key);
  // The same without blocking the loop (the collector's sessions): the sink's load_async (JSONL:
  // at once; JetStream: the stream read on a loader thread), then the node's state rebuilt on the
  // loop and `done` called there with it. While the node loads, a second connection's load and
  // every batch of the node are refused (errc::resource_unavailable_try_again): the load's read
  // and the node's memory must not cross (see node_async in store.cpp).
  using NodeDone = std::function<void(platform::Result<NodeIngest*>)>;
  void node_async(const std::string& node_id, crypto::PublicKey key, NodeDone done);

  // Verifies a batch for `node` and hands what it accepts to the sink; `done` runs once it is
  // durable (on the loop, or before commit returns when nothing was to be written). The
  // result's ack_seq may be acknowledged to the agent only when `done` got a value. An error
  // with errc::resource_unavailable_try_again means "close this connection, the agent retries"
  // (the node's state is reloaded when it comes back); any other error means the sink failed.
  using Done = std::function<void(platform::Result<IngestResult>)>;
  void commit(NodeIngest& node, std::span<const protocol::Frame> frames, Done done);

  const Stats& stats() const { return stats_; }
  std::string describe() const { return sink_->describe(); }

 private:
  struct Slot {
    std::unique_ptr<NodeIngest> ingest;
    bool stale = false;  // memory may differ from the sink; reload on next connection
    bool busy = false;   // a batch is in flight
    bool loading = false;  // node_async: the sink is reading the node
  };
  Store(std::unique_ptr<Sink> sink, IngestOptions options)
      : options_(sink->ingest_options(options)), sink_(std::move(sink)) {}
  void replay(const StoredRecord& record);
  // Whether the node may be loaded now (no batch in flight, no other load): else why not.
  std::optional<platform::Error> cannot_load(const Slot& slot, const std::string& node_id) const;
  // A load's result into the slot, then the key: node()'s second half, on the loop.
  platform::Result<NodeIngest*> apply(Slot& slot, const std::string& node_id,
                                      const crypto::PublicKey& key,
                                      platform::Result<Sink::Loaded> loaded);

  IngestOptions options_;
  std::unique_ptr<Sink> sink_;
  std::map<std::string, Slot> nodes_;
  std::string lines_;                // reused batch buffer
  std::vector<RecordInfo> records_;  // reused, when the sink wants them
  Stats stats_;
};

}  // namespace gridnode::collector
