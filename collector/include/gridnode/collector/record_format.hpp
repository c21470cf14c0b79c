#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/protocol/catalog.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/report.hpp"

// The seam between the ingest code and the sinks: NodeIngest writes each record it accepts
// through a RecordEncoder, which the sink chose (Sink::ingest_options), and the sink reads its
// records back as StoredRecords. Neither NodeIngest nor the Store knows which format that is.
namespace gridnode::collector {

// One record of a batch's text: where it is and what identifies it. A distributed sink
// publishes each record as one message, with `id` as its de-duplication id.
struct RecordInfo {
  protocol::FrameKind kind = protocol::FrameKind::report;
  std::size_t offset = 0;   // of the record in the batch's text
  std::size_t size = 0;     // its bytes (a JSON line's '\n' included)
  std::uint64_t seq = 0;    // report: its seq; gap: to_seq; catalog: 0
  bool keyframe = false;    // a report decodable without its predecessor
  std::string id;           // node:seq:digest, node:gap:from-to, node:catalog:digest
  crypto::Digest digest{};  // a catalog's (its stream subject names it)
};

// Writes a sink's records, appending each to `out` (which keeps its capacity). RecordWriter
// (records.hpp) writes the JSONL sink's lines; StreamRecordWriter (stream_record.hpp) the
// JetStream sink's compact records.
class RecordEncoder {
 public:
  virtual ~RecordEncoder() = default;
  // When the collector received what it writes next (Unix ns).
  virtual void set_received(std::uint64_t unix_ns) = 0;
  virtual void report(const protocol::Report& report, const protocol::EncodedCatalog& catalog,
                      std::span<const std::uint8_t> envelope, std::uint64_t verified_by,
                      std::string& out) = 0;
  virtual void report_without_values(const protocol::Report& report,
                                     std::span<const std::uint8_t> envelope,
                                     std::uint64_t verified_by, const std::string& why,
                                     std::string& out) = 0;
  virtual void gap(const protocol::GapRecord& gap, std::span<const std::uint8_t> envelope,
                   std::string& out) = 0;
  virtual void catalog(const std::string& node, const protocol::EncodedCatalog& catalog,
                       std::string& out) = 0;
};

// Makes one node's encoder (each NodeIngest has its own: RecordWriter caches per catalog).
using EncoderFactory = std::unique_ptr<RecordEncoder> (*)();

// A record read back from a sink: what the node sent (its signed bytes), which is all the
// collector needs to rebuild its state of the node.
struct StoredRecord {
  protocol::FrameKind kind = protocol::FrameKind::report;
  std::string node;
  std::vector<std::uint8_t> raw;
};

}  // namespace gridnode::collector
