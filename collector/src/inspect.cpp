#include "inspect.hpp"

#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/protocol/chain.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/report.hpp"
#include "gridnode/collector/records.hpp"
#include "text.hpp"

namespace gridnode::collector {
namespace {

constexpr std::size_t kMaxFile = std::size_t{256} << 20;

int complain(const std::string& message) {
  std::fprintf(stderr, "gridnode-collector inspect: %s\n", message.c_str());
  return 2;
}

void warn(const std::string& message) {
  std::fprintf(stderr, "gridnode-collector inspect: %s\n", message.c_str());
}

// A catalog frame as found in the file, so that one no report names can be pointed at.
struct CatalogFrame {
  std::size_t offset = 0;
  crypto::Digest digest{};
};

platform::Result<void> write_bytes(const std::string& path, std::span<const std::uint8_t> bytes) {
  return platform::write_file_atomic(
      path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), 0644);
}

}  // namespace

int inspect(const InspectOptions& o) {
  auto cert = crypto::Certificate::load_file(o.cert);
  if (!cert) {
    return complain(cert.error().message());
  }
  const crypto::PublicKey key = cert->public_key();
  const std::string cert_node = cert->common_name();

  std::string text;
  if (auto r = platform::read_file(o.file, text, kMaxFile); !r) {
    return complain(r.error().message());
  }
  std::span<const std::uint8_t> file(reinterpret_cast<const std::uint8_t*>(text.data()),
                                     text.size());
  auto body = protocol::report_file_body(file);
  if (!body) {
    return complain(o.file + ": " + body.error().message());
  }

  std::map<crypto::Digest, protocol::EncodedCatalog> catalogs;
  std::vector<CatalogFrame> catalog_frames;
  std::set<crypto::Digest> named;  // the catalogs the reports name
  bool last_decoded = false;       // whether the previous report's values were decoded
  protocol::ReportDecoder decoder;
  protocol::ChainVerifier chain;
  RecordWriter writer;
  // Offsets in messages count from the file's first byte, as od and dd do.
  protocol::FrameReader frames(file, file.size() - body->size());
  bool all_verified = true;
  std::size_t reports = 0;
  for (;;) {
    auto frame = frames.next();
    if (!frame) {
      return complain(o.file + ": " + frame.error().message());
    }
    if (!*frame) {
      break;
    }
    const protocol::Frame& f = **frame;
    if (f.kind == protocol::FrameKind::catalog) {
      const crypto::Digest digest = crypto::sha256(f.payload);
      catalog_frames.push_back({f.offset, digest});
      auto c = protocol::decode_catalog(f.payload);
      if (!c) {
        const std::string what =
            o.file + ": catalog at byte " + std::to_string(f.offset) + ": " + c.error().message();
        if (!o.signature_only) {
          return complain(what);
        }
        warn(what + " (not checked: --signature-only)");
        continue;
      }
      protocol::EncodedCatalog e;
      e.digest = digest;
      e.bytes.assign(f.payload.begin(), f.payload.end());
      e.catalog = std::move(*c);
      catalogs.insert_or_assign(e.digest, std::move(e));
      continue;
    }
    if (f.kind == protocol::FrameKind::gap) {
      auto envelope = protocol::split_envelope(f.payload);
      auto gap = envelope ? protocol::decode_gap(envelope->message)
                          : tl::unexpected(envelope.error());
      if (!gap) {
        return complain(o.file + ": gap record at byte " + std::to_string(f.offset) + ": " +
                        gap.error().message());
      }
      const bool ok = protocol::verify_envelope(*envelope, key) && gap->node_id == cert_node;
      all_verified = all_verified && ok;
      std::printf("%s\n", dump({{"type", "gap"},
                                {"node", gap->node_id},
                                {"from_seq", gap->from_seq},
                                {"to_seq", gap->to_seq},
                                {"time", rfc3339_ns(gap->time_ns)},
                                {"reason", gap->reason},
                                {"verified", ok}})
                              .c_str());
      continue;
    }
    if (f.kind != protocol::FrameKind::report) {
      return complain(o.file + ": frame of kind " + std::to_string(static_cast<int>(f.kind)) +
                      " at byte " + std::to_string(f.offset) + " does not belong in a report file");
    }
    ++reports;
    auto envelope = protocol::split_envelope(f.payload);
    if (!envelope) {
      return complain(o.file + ": report at byte " + std::to_string(f.offset) + ": " +
                      envelope.error().message());
    }
    const bool signature_ok = protocol::verify_envelope(*envelope, key);
    auto front = protocol::decode_header(envelope->message);
    if (!front) {
      // The signature check above still tells whether these are the node's bytes.
      std::printf("%s\n", dump({{"type", "report"},
                                {"verified", false},
                                {"signature_valid", signature_ok},
                                {"error", front.error().message()},
                                {"encoded_bytes", f.payload.size()}})
                              .c_str());
      all_verified = false;
      continue;
    }
    // A delta that leaves out its identity (node, boot, catalog) gets it from its predecessor.
    const crypto::Digest catalog_digest =
        front->header.same_identity ? decoder.current_catalog() : front->header.catalog;
    if (!front->header.same_identity || last_decoded) {
      named.insert(catalog_digest);
    }
    // The same record the collector's sink holds, plus what inspection adds.
    std::string line;
    std::string node = front->header.node_id;
    std::string values_error;
    auto catalog = catalogs.find(catalog_digest);
    if (front->header.same_identity && !last_decoded) {
      values_error = "report " + std::to_string(front->header.seq) +
                     (reports == 1 ? " follows a report that is not in the file"
                                   : " follows a report whose values could not be decoded");
    } else if (catalog == catalogs.end()) {
      values_error = "catalog " + crypto::to_hex(catalog_digest) + " is not in the file before it";
    } else if (auto rep = decoder.decode(envelope->message, catalog->second); !rep) {
      values_error = rep.error().message();
    } else {
      node = rep->header.node_id;
      writer.report(*rep, catalog->second, f.payload, rep->header.seq, line);
    }
    last_decoded = values_error.empty();
    if (!last_decoded) {
      writer.report_without_values(*front, f.payload, front->header.seq, values_error, line);
    }
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("raw");
    j.erase("verified_by");
    j.erase("received_ns");
    std::string problem;
    if (!signature_ok) {
      problem = "signature does not verify with " + o.cert;
    } else if (!node.empty() && node != cert_node) {
      problem = "report claims node \"" + node + "\", the certificate is CN=" + cert_node;
    } else if (!values_error.empty() && !o.signature_only) {
      // The signature holds, but what the file gives to read its values by is not what the
      // node signed: a catalog altered, missing or out of place, or a report left out.
      problem = "values not verified: " + values_error;
      warn(o.file + ": report " + std::to_string(front->header.seq) + " at byte " +
           std::to_string(f.offset) + ": " + problem);
    }
    const bool verified = problem.empty();
    all_verified = all_verified && verified;
    std::size_t samples = j.contains("metrics") ? j["metrics"].size() : 0;
    j["verified"] = verified;
    j["signature_valid"] = signature_ok;
    if (!verified) {
      j["error"] = problem;
    }
    j["chain"] = verified ? std::string(protocol::to_string(
                                chain.check(front->header, front->digest).link))
                          : "unverified";
    j["samples"] = samples;
    j["encoded_bytes"] = f.payload.size();
    j["message_bytes"] = envelope->message.size();
    j["bytes_per_sample"] =
        samples == 0 ? 0.0 : static_cast<double>(f.payload.size()) / static_cast<double>(samples);
    std::printf("%s\n", dump(j).c_str());

    if (reports == 1 && !o.export_message.empty()) {
      if (auto w = write_bytes(o.export_message, envelope->message); !w) {
        return complain(w.error().message());
      }
    }
    if (reports == 1 && !o.export_signature.empty()) {
      auto der = crypto::signature_to_der(envelope->signature);
      if (!der) {
        return complain(der.error().message());
      }
      if (auto w = write_bytes(o.export_signature, *der); !w) {
        return complain(w.error().message());
      }
    }
  }
  if (reports == 0) {
    return complain(o.file + ": no report in the file");
  }
  // A catalog whose bytes match no digest a report names is not what any node signed.
  for (const CatalogFrame& c : catalog_frames) {
    if (named.contains(c.digest)) {
      continue;
    }
    const std::string problem = "catalog at byte " + std::to_string(c.offset) + " (sha256 " +
                                crypto::to_hex(c.digest) +
                                ") matches no catalog a report names: the file was altered or "
                                "is corrupt";
    if (o.signature_only) {
      warn(o.file + ": " + problem + " (not checked: --signature-only)");
      continue;
    }
    warn(o.file + ": " + problem);
    all_verified = false;
    std::printf("%s\n", dump({{"type", "catalog"},
                              {"offset", c.offset},
                              {"digest", crypto::to_hex(c.digest)},
                              {"verified", false},
                              {"error", problem}})
                            .c_str());
  }
  std::fflush(stdout);
  return all_verified ? 0 : 1;
}

}  // namespace gridnode::collector
