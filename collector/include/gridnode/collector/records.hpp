#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gridnode/protocol/catalog.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/report.hpp"
#include "gridnode/collector/record_format.hpp"

namespace gridnode::collector {

// Writes the sink's JSON lines (docs/collector.md), fast: the text of every series that does
// not change between reports (`{"name":…,"labels":{…},"value":`) is built once per catalog, and
// values are the exact decimals format_value prints (valid JSON numbers, no float involved).
//
//   {"type":"report","node":…,"seq":…,"boot_id":…,"time":…,"time_ns":…,"labels":{…},
//    "keyframe":…,"digest":…,"prev":…,"catalog":…,"verified_by":…,"received_ns":…,
//    "metrics":[…],"events":[…],
//    "raw":"<base64 of the signed report>"}
//   {"type":"gap","node":…,"from_seq":…,"to_seq":…,"time":…,"reason":…,"raw":…}
//   {"type":"catalog","node":…,"digest":…,"raw":…}
//
// `raw` keeps the node's signed bytes, so the sink can be re-verified (and the collector's state
// rebuilt) long after the fact.
class RecordWriter final : public RecordEncoder {
 public:
  // When the collector received what it writes next (Unix ns): "received_ns" in report lines,
  // so that the sink shows each report's delay from sampling to the collector.
  void set_received(std::uint64_t unix_ns) override { received_ns_ = unix_ns; }

  void report(const protocol::Report& report, const protocol::EncodedCatalog& catalog,
              std::span<const std::uint8_t> envelope, std::uint64_t verified_by,
              std::string& out) override;
  void report_without_values(const protocol::Report& report, std::span<const std::uint8_t> envelope,
                             std::uint64_t verified_by, const std::string& why,
                             std::string& out) override;
  void gap(const protocol::GapRecord& gap, std::span<const std::uint8_t> envelope,
           std::string& out) override;
  void catalog(const std::string& node, const protocol::EncodedCatalog& catalog,
               std::string& out) override;

 private:
  struct Cache {
    std::vector<std::string> prefixes;  // per series
  };
  const Cache& cache_for(const protocol::EncodedCatalog& catalog);
  void header(const protocol::Report& report, std::uint64_t verified_by, std::string& out);

  std::map<crypto::Digest, Cache> caches_;
  std::uint64_t received_ns_ = 0;
};

// What the collector needs of a sink line to rebuild its state: the record's type, node and
// signed bytes (still base64). Everything else in the line (the decoded metrics, most of its
// bytes) is derived from `raw`: a line in RecordWriter's own layout is read without lexing it,
// any other JSON object is lexed without being built into a document, so that replaying a large
// sink at start-up costs little more than reading it.
struct RecordKeys {
  std::string type;
  std::string node;
  std::string raw;
  std::uint64_t seq = 0;  // a report's "seq"; 0 where the line has none
};
// False when the line is not a JSON object or lacks a string "type", "node" or "raw" at its top
// level. `out` is reused between calls (its strings keep their capacity).
[[nodiscard]] bool read_record_keys(std::string_view line, RecordKeys& out);

// The JSONL sink's records: an encoder (a RecordWriter), and a line read back (its type, node
// and decoded `raw`; nothing when the line is no record). `keys` is scratch reused between lines.
std::unique_ptr<RecordEncoder> json_lines_encoder();
[[nodiscard]] std::optional<StoredRecord> read_json_record(std::string_view line, RecordKeys& keys);

// A JSON string literal, quotes included; invalid UTF-8 becomes U+FFFD.
void append_json_string(std::string_view s, std::string& out);

}  // namespace gridnode::collector
