#include "inspect.hpp"

#include <cstdio>
#include <map>
#include <optional>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/protocol/chain.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/report.hpp"
#include "records.hpp"
#include "text.hpp"

namespace gridnode::collector {
namespace {

constexpr std::size_t kMaxFile = std::size_t{256} << 20;

int complain(const std::string& message) {
  std::fprintf(stderr, "gridnode-collector inspect: %s\n", message.c_str());
  return 2;
}

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
  protocol::ReportDecoder decoder;
  protocol::ChainVerifier chain;
  RecordWriter writer;
  protocol::FrameReader frames(*body);
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
      auto c = protocol::decode_catalog(f.payload);
      if (!c) {
        return complain(o.file + ": catalog at byte " + std::to_string(f.offset) + ": " +
                        c.error().message());
      }
      protocol::EncodedCatalog e;
      e.digest = crypto::sha256(f.payload);
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
    // The same record the collector's sink holds, plus what inspection adds.
    std::string line;
    std::string node = front->header.node_id;
    auto catalog = catalogs.find(catalog_digest);
    if (catalog == catalogs.end()) {
      writer.report_without_values(
          *front, f.payload, front->header.seq,
          front->header.same_identity
              ? "report " + std::to_string(front->header.seq) +
                    " follows a report that is not in the file"
              : "catalog " + crypto::to_hex(catalog_digest) + " not in the file",
          line);
    } else if (auto rep = decoder.decode(envelope->message, catalog->second); !rep) {
      writer.report_without_values(*front, f.payload, front->header.seq, rep.error().message(),
                                   line);
    } else {
      node = rep->header.node_id;
      writer.report(*rep, catalog->second, f.payload, rep->header.seq, line);
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
    }
    const bool verified = problem.empty();
    all_verified = all_verified && verified;
    std::size_t samples = j.contains("metrics") ? j["metrics"].size() : 0;
    j["verified"] = verified;
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
  std::fflush(stdout);
  return all_verified ? 0 : 1;
}

}  // namespace gridnode::collector
