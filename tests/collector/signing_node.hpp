#pragma once
// A node that signs reports for real, and batches of its frames: the collector's tests feed them
// to NodeIngest and Store as an agent would.

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/report.hpp"
#include "report_fixtures.hpp"

namespace gridnode::testing {

using protocol::Bytes;
using protocol::FrameKind;

// A node that signs reports for real: key, catalog, encoder, chain.
struct Node {
  explicit Node(std::string id, std::uint32_t keyframe_interval = 4)
      : id(std::move(id)), encoder(keyframe_interval) {
    random = crypto::Random::create("test").value();
    key.emplace(crypto::PrivateKey::generate(*random).value());
    std::mt19937_64 rng(5);
    catalog = protocol::EncodedCatalog::of(testing::random_catalog(rng, 5, 40));
  }
  // The next signed report (its payload, as in a frame).
  Bytes next() {
    testing::evolve(rng, catalog.catalog, values);
    protocol::ReportHeader h;
    h.node_id = id;
    h.node_labels = labels;
    h.boot_id = {9, 9, 9};
    h.seq = ++seq;
    h.time_ns = 1'764'000'000'000'000'000ull + seq;
    h.prev = prev;
    Bytes msg;
    encoder.encode(catalog, h, events, values, msg);
    prev = protocol::sign_envelope(msg, *key, *random).value();
    sent.push_back(values);
    return msg;
  }
  Bytes gap(std::uint64_t from, std::uint64_t to) {
    Bytes msg;
    protocol::encode_gap({id, from, to, 1, "spool full"}, msg);
    (void)protocol::sign_envelope(msg, *key, *random).value();
    return msg;
  }
  std::string id;
  platform::Labels labels;  // region, site…: sorted by key
  std::vector<protocol::Event> events;  // carried by every report from now on
  std::unique_ptr<crypto::Random> random;
  std::optional<crypto::PrivateKey> key;
  protocol::EncodedCatalog catalog;
  protocol::ReportEncoder encoder;
  std::mt19937_64 rng{77};
  std::vector<protocol::Slot> values;
  std::vector<std::vector<protocol::Slot>> sent;  // sent[seq - 1]
  std::uint64_t seq = 0;
  crypto::Digest prev{};
};

struct Batch {
  std::vector<Bytes> payloads;
  std::vector<FrameKind> kinds;
  void add(FrameKind k, Bytes b) {
    kinds.push_back(k);
    payloads.push_back(std::move(b));
  }
  std::vector<protocol::Frame> frames() const {
    std::vector<protocol::Frame> f;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      f.push_back({kinds[i], payloads[i], 0});
    }
    return f;
  }
};

inline Batch reports(Node& n, int count, bool with_catalog) {
  Batch b;
  if (with_catalog) {
    b.add(FrameKind::catalog, n.catalog.bytes);
  }
  for (int i = 0; i < count; ++i) {
    b.add(FrameKind::report, n.next());
  }
  return b;
}

}  // namespace gridnode::testing
