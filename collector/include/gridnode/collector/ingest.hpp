#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/protocol/chain.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/report.hpp"
#include "gridnode/collector/record_format.hpp"
#include "gridnode/collector/records.hpp"
#include "gridnode/collector/verifier.hpp"

namespace gridnode::collector {

struct IngestOptions {
  // Check every report's signature instead of the last of each run of linked reports.
  bool verify_all = false;
  // How the records are written: the sink's encoder (Sink::ingest_options sets it). Outside a
  // Store (tests, benchmarks) the JSONL sink's lines.
  EncoderFactory encoder = &json_lines_encoder;
  // Unix ns now, for each record's received_ns; nullptr: the system clock (tests inject one).
  std::uint64_t (*clock_ns)() = nullptr;
  // Write a node's catalog record again when a report uses it this long (ns) after it was last
  // written, so that a stream whose messages age out keeps the catalog of a session that outlives
  // its max_age (the JetStream sink's ingest_options sets it). 0: once per catalog and node.
  std::uint64_t catalog_refresh_ns = 0;
};

struct IngestResult {
  std::uint64_t ack_seq = 0;  // the last report accepted in this batch (0: none)
  std::size_t reports = 0;    // accepted
  std::size_t gaps = 0;       // gap records accepted
  std::size_t duplicates = 0;
  std::size_t chain_gaps = 0;  // reports missing before an accepted one
  std::size_t signatures_checked = 0;
  std::string rejected;  // non-empty: why the batch was refused from some report on
};

// One node's stream as the collector sees it: the node's key (from its client certificate),
// its chain position, its decoder state and its catalogs. Checks every report's hash link and
// the signature of the last report of each run of linked reports (a valid signature on report N
// vouches for every report whose digests link up to it), decodes the values and writes the sink
// records of what it accepts. Not thread-safe: one connection feeds it at a time.
class NodeIngest {
 public:
  // `key` may be empty while the node's state is restored from the sink; ingest() refuses
  // everything until set_key() gave it the key of the node's certificate.
  NodeIngest(std::string node_id, std::optional<crypto::PublicKey> key, IngestOptions options);

  // Verifies the frames of one batch, in order, and appends to `out` the sink records of what it
  // accepts (catalogs first, then reports and gap records), written by the options' encoder. The node's state moves past what was
  // accepted; a rejected report and everything after it in the batch leave no trace.
  // `records`, when given, receives one entry per record appended (offsets into `out`).
  IngestResult ingest(std::span<const protocol::Frame> frames, std::string& out,
                      std::vector<RecordInfo>* records = nullptr);

  // Recovery: one record read back from the sink (already verified when it was written).
  [[nodiscard]] platform::Result<void> restore(protocol::FrameKind kind,
                                               std::span<const std::uint8_t> bytes);

  const std::string& node_id() const { return node_; }
  void set_key(crypto::PublicKey key) { key_.emplace(std::move(key)); }
  // Takes the chain position from elsewhere (the sink's index, e.g. the JetStream bucket).
  void resume(std::uint64_t seq, const crypto::Digest& digest) {
    chain_ = protocol::ChainVerifier(seq, digest);
  }
  std::uint64_t have_seq() const { return chain_.last_seq(); }
  const crypto::Digest& have_digest() const { return chain_.last_digest(); }
  // The node's region and site labels from its latest report ("" until one was decoded).
  const std::string& region() const { return region_; }
  const std::string& site() const { return site_; }

 private:
  struct Pending {
    std::span<const std::uint8_t> envelope;
    protocol::Envelope split;
    protocol::Report report;  // decoded (values may be missing: values_error)
    std::string values_error;
    const protocol::EncodedCatalog* catalog = nullptr;
  };
  // Verifies the pending run; renders what it vouches for. False when a signature failed
  // (then `result.rejected` says why and the state is back at the last good report).
  bool settle(IngestResult& result, std::string& lines, std::vector<RecordInfo>* records);
  const protocol::EncodedCatalog* catalog_for(const protocol::ReportHeader& h) const;
  void decode_into(Pending& p);
  void take_labels(const platform::Labels& labels);
  void write_report(const Pending& p, std::uint64_t verified_by, std::string& out);
  // The catalog's record into `lines`, its RecordInfo into `records`; remembered as written now.
  void write_catalog_record(const protocol::EncodedCatalog& catalog, std::uint64_t received,
                            std::string& lines, std::vector<RecordInfo>* records);

  std::string node_;
  std::optional<ReportVerifier> key_;
  IngestOptions options_;
  protocol::ChainVerifier chain_;
  protocol::ReportDecoder decoder_;
  protocol::ChainVerifier chain_vouched_;  // state after the last vouched report
  protocol::ReportDecoder decoder_vouched_;
  std::map<crypto::Digest, protocol::EncodedCatalog> catalogs_;
  // When each catalog's record was last written (received_ns; 0: restored, never by this ingest).
  std::map<crypto::Digest, std::uint64_t> catalog_written_;
  std::vector<Pending> pending_;
  std::unique_ptr<RecordEncoder> encoder_;  // the sink's (IngestOptions::encoder)
  std::string region_, site_;
};

}  // namespace gridnode::collector
