#pragma once

#include <map>
#include <memory>
#include <string>

#include "ingest.hpp"
#include "records.hpp"
#include "sink.hpp"

namespace gridnode::collector {

// The collector's state: one NodeIngest per node, and the sink every verified record goes to.
// Opening it replays the sink, so after a crash (kill -9 included) every node resumes exactly
// after the last record that reached the sink.
class Store {
 public:
  struct Stats {
    std::uint64_t nodes = 0;
    std::uint64_t records_replayed = 0;
    std::uint64_t lines_unreadable = 0;  // whole lines that were not a record (skipped)
    std::uint64_t bytes_cut = 0;         // torn tail cut at open
  };

  [[nodiscard]] static platform::Result<std::unique_ptr<Store>> open_jsonl(
      const std::string& path, IngestOptions options);

  // The node's state (created on first sight), with the key of its current certificate.
  NodeIngest& node(const std::string& node_id, const crypto::PublicKey& key);

  // Verifies a batch for `node`, appends what it accepts to the sink and makes it durable.
  // The result's ack_seq may be acknowledged to the agent only when this returned a value.
  [[nodiscard]] platform::Result<IngestResult> commit(NodeIngest& node,
                                                      std::span<const protocol::Frame> frames);

  const Stats& stats() const { return stats_; }
  Sink& sink() { return *sink_; }

 private:
  Store(IngestOptions options) : options_(options) {}
  void replay(std::string_view line);

  IngestOptions options_;
  std::unique_ptr<Sink> sink_;
  std::map<std::string, std::unique_ptr<NodeIngest>> nodes_;
  std::string lines_;  // reused batch buffer
  RecordKeys keys_;    // reused by replay
  Stats stats_;
};

}  // namespace gridnode::collector
