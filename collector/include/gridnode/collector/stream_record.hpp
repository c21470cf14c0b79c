#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/protocol/catalog.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/report.hpp"
#include "gridnode/protocol/wire.hpp"
#include "gridnode/collector/record_format.hpp"
#include "gridnode/collector/records.hpp"

// The compact stream record (docs/jetstream.md, "Message format"): what a collector publishes into
// JetStream for each verified record, instead of the JSONL sink's line. A report's line is ~30 KB
// of rendered names, labels and base64; its stream record is the node's signed bytes plus the
// decoded values as varints (~2 KB), because rendering and copying that text cost the collector
// more CPU than verifying the report. Consumers render the line when they need it
// (StreamRecordRenderer: `export` writes exactly the JSONL sink's lines) or read the values
// straight from the record with the catalog (`capacity`).
//
//   record   := "GNR" version:u8 (1) kind:u8 (1 report, 2 gap, 3 catalog) body
//   report   := flags:u8 (bit 0 keyframe, bit 1 values follow, bit 2 same identity)
//               node:string labels:(count:uvarint (key:string value:string)*)
//               boot_id:16 seq:uvarint time_ns:uvarint digest:32 prev:32 catalog:32
//               verified_by:uvarint received_ns:uvarint
//               (values:uvarint-length bytes | values_error:string) envelope:uvarint-length bytes
//   values   := count:uvarint present:bitmap signed:bitmap (svarint | uvarint) per present series
//   gap      := node:string envelope:rest
//   catalog  := node:string digest:32 catalog-bytes:rest
//
// Strings are uvarint-length-prefixed, every varint is protocol::Writer's / Reader's (wire.hpp). A bitmap has ceil(count / 8) bytes,
// series i at bit i % 8 of byte i / 8. The header fields are the ones the collector rendered (a
// delta report's node, labels, boot id and catalog are its predecessor's, resolved by the
// collector's decoder), so a consumer needs no decoder state: only the catalog the report names.
namespace gridnode::collector {

inline constexpr std::string_view kStreamRecordMagic = "GNR";
// Where the JetStream sink publishes them: gridnode.reports.<region>.<site>.<node>, and
// catalog_subject() below.
inline constexpr std::string_view kSubjectPrefix = "gridnode.reports";
inline constexpr std::uint8_t kStreamRecordVersion = 1;

enum class StreamKind : std::uint8_t { report = 1, gap = 2, catalog = 3 };

// Writes stream records: the JetStream sink's RecordEncoder. Appends to `out`, which keeps its
// capacity, as do the writer's own buffers: steady state allocates nothing.
class StreamRecordWriter final : public RecordEncoder {
 public:
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
  void header(const protocol::Report& report, bool with_values, std::uint64_t verified_by,
              protocol::Writer& w);
  std::uint64_t received_ns_ = 0;
  protocol::Bytes record_;  // the record being written
  protocol::Bytes values_;  // a report's values block, before its length is known
};

std::unique_ptr<RecordEncoder> stream_record_encoder();

// True when `message` starts like a stream record (any version); false for a JSON line (`{`).
bool is_stream_record(std::span<const std::uint8_t> message);

// A parsed stream record. Views point into the message.
struct StreamRecord {
  StreamKind kind = StreamKind::report;
  std::string_view node;
  // report: the header as the collector rendered it (node_id is `node`)
  protocol::ReportHeader header;
  bool has_values = false;
  std::uint64_t verified_by = 0;
  std::uint64_t received_ns = 0;
  crypto::Digest digest{};                // report: SHA-256 of its message; catalog: of its bytes
  std::span<const std::uint8_t> values;   // report with values: the values block
  std::string_view values_error;          // report without values: why
  std::span<const std::uint8_t> payload;  // report, gap: the signed envelope; catalog: its bytes
};

// Parses untrusted bytes. Errors are errc::bad_message ("stream record: … at byte N") for
// truncated or malformed records, errc::not_supported for another version.
[[nodiscard]] platform::Result<StreamRecord> parse_stream_record(
    std::span<const std::uint8_t> message);

// Calls `fn(series_index, value)` for each present value of a values block whose catalog has
// `series` series. Fails (errc::bad_message) when the block is malformed or has another count.
template <class Fn>
[[nodiscard]] platform::Result<void> for_each_stream_value(std::span<const std::uint8_t> values,
                                                           std::size_t series, Fn&& fn);

// A stream record back to what the node sent (StoredRecord); nothing when it is not a valid one.
[[nodiscard]] std::optional<StoredRecord> read_stream_record(std::span<const std::uint8_t> message);

// Decodes a values block into one slot per series (`out` is resized; keeps its capacity).
[[nodiscard]] platform::Result<void> decode_stream_values(std::span<const std::uint8_t> values,
                                                          std::size_t series,
                                                          std::vector<protocol::Slot>& out);

// "gridnode.reports.catalog.<digest hex>": where catalog records go, one subject per catalog, so
// that a consumer reading the last message per subject gets every catalog once and can fetch one
// by its digest (js_GetLastMsg) when a report names a catalog it has not seen.
std::string catalog_subject(const crypto::Digest& digest);

// Renders stream messages as the JSONL sink's lines (docs/collector.md), byte for byte what the
// sink would have written for the same records: the exporter's archive stays greppable and equal
// to a JSONL collector's. A message that is already a JSON line (a stream written before compact
// records, or by another publisher) is passed through. Keeps the catalogs it has seen, by digest;
// `fetch`, when given, is asked for one a report names that has not been seen (or has aged out).
class StreamRecordRenderer {
 public:
  using Fetch = std::function<std::optional<protocol::Bytes>(const crypto::Digest&)>;
  explicit StreamRecordRenderer(Fetch fetch = nullptr) : fetch_(std::move(fetch)) {}

  // Appends the message's line, '\n' included, to `out`. On error `out` is unchanged and the
  // error says what is wrong with the message (truncated, garbage, catalog unknown).
  [[nodiscard]] platform::Result<void> render(std::span<const std::uint8_t> message,
                                              std::string& out);
  // Makes a catalog known (its digest is computed here).
  [[nodiscard]] platform::Result<const protocol::EncodedCatalog*> add_catalog(
      std::span<const std::uint8_t> bytes);

 private:
  const protocol::EncodedCatalog* catalog(const crypto::Digest& digest);
  Fetch fetch_;
  std::map<crypto::Digest, protocol::EncodedCatalog> catalogs_;
  RecordWriter writer_;
  protocol::Report report_;  // reused between reports
};

// --- implementation of the template

namespace stream_record_detail {
[[nodiscard]] platform::Result<void> check_values_header(std::span<const std::uint8_t> values,
                                                         std::size_t series, std::size_t& pos);
platform::Error bad_values(std::string_view what, std::size_t pos);
}  // namespace stream_record_detail

template <class Fn>
platform::Result<void> for_each_stream_value(std::span<const std::uint8_t> values,
                                             std::size_t series, Fn&& fn) {
  namespace d = stream_record_detail;
  std::size_t pos = 0;
  if (auto r = d::check_values_header(values, series, pos); !r) {
    return r;
  }
  const std::size_t map = (series + 7) / 8;
  const std::uint8_t* present = values.data() + pos;
  const std::uint8_t* is_signed = present + map;
  pos += 2 * map;
  protocol::Reader in(values.subspan(pos));
  for (std::size_t i = 0; i < series; ++i) {
    const std::uint8_t bit = static_cast<std::uint8_t>(1u << (i % 8));
    if ((present[i / 8] & bit) == 0) {
      continue;
    }
    auto v = in.uvarint();
    if (!v) {
      return tl::unexpected(d::bad_values("value truncated or not canonical", pos + in.offset()));
    }
    if ((is_signed[i / 8] & bit) != 0) {
      fn(i, platform::Value::of_signed(protocol::unzigzag(*v)));
    } else {
      fn(i, platform::Value::of_unsigned(*v));
    }
  }
  if (!in.at_end()) {
    return tl::unexpected(d::bad_values("bytes after the last value", pos + in.offset()));
  }
  return {};
}

}  // namespace gridnode::collector
