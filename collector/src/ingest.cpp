#include "gridnode/collector/ingest.hpp"

#include <chrono>

#include "gridnode/protocol/catalog.hpp"
#include "gridnode/protocol/gap.hpp"

namespace gridnode::collector {

NodeIngest::NodeIngest(std::string node_id, std::optional<crypto::PublicKey> key,
                       IngestOptions options)
    : node_(std::move(node_id)), options_(options), encoder_(options.encoder()) {
  if (key) {
    key_.emplace(std::move(*key));
  }
}

void NodeIngest::take_labels(const platform::Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (k == "region") {
      region_ = v;
    } else if (k == "site") {
      site_ = v;
    }
  }
}

const protocol::EncodedCatalog* NodeIngest::catalog_for(const protocol::ReportHeader& h) const {
  auto it = catalogs_.find(h.same_identity ? decoder_.current_catalog() : h.catalog);
  return it == catalogs_.end() ? nullptr : &it->second;
}

void NodeIngest::decode_into(Pending& p) {
  p.report.header.node_id = node_;  // also when the report leaves it out and cannot be decoded
  const protocol::EncodedCatalog* catalog = catalog_for(p.report.header);
  if (catalog == nullptr) {
    p.values_error = "catalog not received";
    decoder_.reset();
    return;
  }
  auto rep = decoder_.decode(p.split.message, *catalog);
  if (!rep) {
    p.values_error = rep.error().message();
    return;
  }
  p.report = std::move(*rep);
  p.catalog = catalog;
}

namespace {

void add_record(std::vector<RecordInfo>* records, protocol::FrameKind kind, std::size_t offset,
                const std::string& lines, std::uint64_t seq, bool keyframe, std::string id,
                const crypto::Digest& digest = {}) {
  if (records != nullptr) {
    records->push_back({kind, offset, lines.size() - offset, seq, keyframe, std::move(id), digest});
  }
}

}  // namespace

void NodeIngest::write_report(const Pending& p, std::uint64_t verified_by, std::string& out) {
  if (p.catalog != nullptr) {
    encoder_->report(p.report, *p.catalog, p.envelope, verified_by, out);
  } else {
    encoder_->report_without_values(p.report, p.envelope, verified_by, p.values_error, out);
  }
}

void NodeIngest::write_catalog_record(const protocol::EncodedCatalog& catalog,
                                      std::uint64_t received, std::string& lines,
                                      std::vector<RecordInfo>* records) {
  const std::size_t offset = lines.size();
  encoder_->catalog(node_, catalog, lines);
  add_record(records, protocol::FrameKind::catalog, offset, lines, 0, false,
             node_ + ":catalog:" + crypto::to_hex(catalog.digest), catalog.digest);
  catalog_written_[catalog.digest] = received;
}

bool NodeIngest::settle(IngestResult& result, std::string& lines,
                        std::vector<RecordInfo>* records) {
  if (pending_.empty()) {
    return true;
  }
  std::size_t good = pending_.size();  // index one past the last vouched report
  ++result.signatures_checked;
  if (!key_->verify(pending_.back().report.digest, pending_.back().split.signature)) {
    // Find the last report whose signature holds: it vouches for those before it.
    good = 0;
    for (std::size_t i = pending_.size() - 1; i-- > 0;) {
      ++result.signatures_checked;
      if (key_->verify(pending_[i].report.digest, pending_[i].split.signature)) {
        good = i + 1;
        break;
      }
    }
    result.rejected =
        "signature of report " + std::to_string(pending_[good].report.header.seq) +
        (good + 1 < pending_.size() ? " (or of the reports it links to) does not verify"
                                    : " does not verify");
    // Back to the state after the last good report.
    chain_ = chain_vouched_;
    decoder_ = decoder_vouched_;
    for (std::size_t i = 0; i < good; ++i) {
      (void)chain_.check(pending_[i].report.header, pending_[i].report.digest);
      if (pending_[i].catalog != nullptr) {
        (void)decoder_.decode(pending_[i].split.message, *pending_[i].catalog);
      }
    }
  }
  if (good > 0) {
    const std::uint64_t vouched_by = pending_[good - 1].report.header.seq;
    for (std::size_t i = 0; i < good; ++i) {
      Pending& p = pending_[i];
      const std::size_t offset = lines.size();
      take_labels(p.report.header.node_labels);
      write_report(p, vouched_by, lines);
      const auto& h = p.report.header;
      // Not the boot id: a delta report leaves it out of its bytes, and one collector may decode
      // a report that another cannot. The digest identifies the signed bytes themselves.
      add_record(records, protocol::FrameKind::report, offset, lines, h.seq, h.keyframe,
                 node_ + ":" + std::to_string(h.seq) + ":" + crypto::to_hex(p.report.digest));
      ++result.reports;
    }
    result.ack_seq = vouched_by;
  }
  chain_vouched_ = chain_;
  decoder_vouched_ = decoder_;
  pending_.clear();
  return result.rejected.empty();
}

IngestResult NodeIngest::ingest(std::span<const protocol::Frame> frames, std::string& out,
                                std::vector<RecordInfo>* records) {
  IngestResult result;
  if (!key_) {
    result.rejected = "no key for node " + node_;
    return result;
  }
  std::string catalog_lines;
  std::string lines;
  std::vector<RecordInfo> catalog_records;
  std::vector<RecordInfo> line_records;
  std::vector<RecordInfo>* cat_out = records != nullptr ? &catalog_records : nullptr;
  std::vector<RecordInfo>* line_out = records != nullptr ? &line_records : nullptr;
  const auto received =
      options_.clock_ns != nullptr
          ? options_.clock_ns()
          : static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  encoder_->set_received(received);
  chain_vouched_ = chain_;
  decoder_vouched_ = decoder_;
  pending_.clear();
  auto reject = [&](std::string why) {
    if (settle(result, lines, line_out)) {
      result.rejected = std::move(why);
    }
  };
  for (const protocol::Frame& f : frames) {
    if (f.kind == protocol::FrameKind::catalog) {
      auto c = protocol::decode_catalog(f.payload);
      if (!c) {
        reject("catalog: " + c.error().message());
        break;
      }
      crypto::Digest digest = crypto::sha256(f.payload);
      if (!catalogs_.contains(digest)) {
        protocol::EncodedCatalog e;
        e.digest = digest;
        e.bytes.assign(f.payload.begin(), f.payload.end());
        e.catalog = std::move(*c);
        auto& stored = catalogs_.emplace(digest, std::move(e)).first->second;
        write_catalog_record(stored, received, catalog_lines, cat_out);
      }
      continue;
    }
    auto split = protocol::split_envelope(f.payload);
    if (!split) {
      reject(split.error().message());
      break;
    }
    if (f.kind == protocol::FrameKind::gap) {
      auto gap = protocol::decode_gap(split->message);
      if (!gap || gap->node_id != node_) {
        reject(gap ? "gap record for node " + gap->node_id : gap.error().message());
        break;
      }
      if (!settle(result, lines, line_out)) {
        break;
      }
      ++result.signatures_checked;
      if (!key_->verify(crypto::sha256(split->message), split->signature)) {
        result.rejected = "signature of a gap record does not verify";
        break;
      }
      const std::size_t offset = lines.size();
      encoder_->gap(*gap, f.payload, lines);
      add_record(
          line_out, protocol::FrameKind::gap, offset, lines, gap->to_seq, false,
          node_ + ":gap:" + std::to_string(gap->from_seq) + "-" + std::to_string(gap->to_seq));
      ++result.gaps;
      continue;
    }
    auto front = protocol::decode_header(split->message);
    if (!front) {
      reject(front.error().message());
      break;
    }
    const protocol::ReportHeader& h = front->header;
    if (!h.same_identity && h.node_id != node_) {
      reject("report " + std::to_string(h.seq) + " claims node \"" + h.node_id +
             "\", the connection is node \"" + node_ + "\"");
      break;
    }
    // A run of linked reports is vouched for by its last signature; a jump in the chain ends
    // the run, so the reports before it are settled first.
    protocol::ChainVerifier probe = chain_;
    protocol::ChainCheck check = probe.check(h, front->digest);
    if (check.link == protocol::Link::duplicate) {
      ++result.duplicates;
      continue;
    }
    if (!check.accepted()) {
      reject("report " + std::to_string(h.seq) + ": " + check.describe());
      break;
    }
    if (check.link != protocol::Link::next && !settle(result, lines, line_out)) {
      break;
    }
    chain_ = probe;
    if (check.link == protocol::Link::gap) {
      result.chain_gaps += check.missing_to - check.missing_from + 1;
    }
    Pending p;
    p.envelope = f.payload;
    p.split = *split;
    p.report = std::move(*front);
    decode_into(p);
    if (p.catalog != nullptr && options_.catalog_refresh_ns > 0 &&
        received - catalog_written_[p.catalog->digest] >= options_.catalog_refresh_ns) {
      write_catalog_record(*p.catalog, received, catalog_lines, cat_out);
    }
    pending_.push_back(std::move(p));
    if (options_.verify_all && !settle(result, lines, line_out)) {
      break;
    }
  }
  if (result.rejected.empty()) {
    settle(result, lines, line_out);
  }
  if (records != nullptr) {
    const std::size_t base = out.size();
    for (auto& r : catalog_records) {
      r.offset += base;
      records->push_back(std::move(r));
    }
    for (auto& r : line_records) {
      r.offset += base + catalog_lines.size();
      records->push_back(std::move(r));
    }
  }
  out += catalog_lines;
  out += lines;
  return result;
}

platform::Result<void> NodeIngest::restore(protocol::FrameKind kind,
                                           std::span<const std::uint8_t> bytes) {
  if (kind == protocol::FrameKind::catalog) {
    auto c = protocol::decode_catalog(bytes);
    if (!c) {
      return tl::unexpected(c.error());
    }
    protocol::EncodedCatalog e;
    e.digest = crypto::sha256(bytes);
    e.bytes.assign(bytes.begin(), bytes.end());
    e.catalog = std::move(*c);
    catalogs_.insert_or_assign(e.digest, std::move(e));
    return {};
  }
  if (kind != protocol::FrameKind::report) {
    return {};
  }
  auto split = protocol::split_envelope(bytes);
  if (!split) {
    return tl::unexpected(split.error());
  }
  auto front = protocol::decode_header(split->message);
  if (!front) {
    return tl::unexpected(front.error());
  }
  (void)chain_.check(front->header, front->digest);
  if (const auto* catalog = catalog_for(front->header)) {
    if (auto rep = decoder_.decode(split->message, *catalog)) {
      take_labels(rep->header.node_labels);
    }
  }
  return {};
}

}  // namespace gridnode::collector
