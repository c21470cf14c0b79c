#include "gridnode/collector/ingest.hpp"

#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gridnode/crypto/base64.hpp"
#include <fstream>

#include "gridnode/protocol/gap.hpp"
#include "signing_node.hpp"
#include "gridnode/collector/store.hpp"
#include "temp_dir.hpp"

namespace gridnode::collector {
namespace {

using protocol::Bytes;
using protocol::FrameKind;
using testing::Batch;
using testing::Node;
using testing::reports;

std::unique_ptr<Store> open_jsonl(asio::io_context& io, const std::string& path) {
  return Store::open(JsonlSink::open(io, path).value(), {}).value();
}

// A JSONL store commits on the loop (its group commit's flush): runs it until `done` has run.
platform::Result<IngestResult> commit_now(asio::io_context& io, Store& store, NodeIngest& node,
                                          std::span<const protocol::Frame> frames) {
  platform::Result<IngestResult> out = platform::fail(std::errc::operation_in_progress, "not done");
  bool done = false;
  store.commit(node, frames, [&](platform::Result<IngestResult> r) {
    out = std::move(r);
    done = true;
  });
  while (!done) {
    io.restart();
    if (io.run_one() == 0) {
      break;
    }
  }
  return out;
}

std::vector<nlohmann::json> lines_of(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    out.push_back(nlohmann::json::parse(line));  // every line is whole JSON
  }
  return out;
}

TEST(Ingest, ALinkedRunIsVouchedForByItsLastSignature) {
  Node n("node-1");
  NodeIngest in(n.id, n.key->public_key(), {});
  Batch b = reports(n, 10, true);
  std::string out;
  auto r = in.ingest(b.frames(), out);
  EXPECT_TRUE(r.rejected.empty()) << r.rejected;
  EXPECT_EQ(r.ack_seq, 10u);
  EXPECT_EQ(r.reports, 10u);
  EXPECT_EQ(r.signatures_checked, 1u);
  auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 11u);
  EXPECT_EQ(lines[0]["type"], "catalog");
  for (int i = 1; i <= 10; ++i) {
    const auto& l = lines[i];
    EXPECT_EQ(l["type"], "report");
    EXPECT_EQ(l["node"], "node-1");
    EXPECT_EQ(l["seq"], i);
    EXPECT_EQ(l["verified_by"], 10);
    // Values: exactly what the node sent (present ones), as exact decimals.
    std::size_t present = 0;
    for (const auto& s : n.sent[i - 1]) {
      present += s.present ? 1 : 0;
    }
    EXPECT_EQ(l["metrics"].size(), present);
    EXPECT_FALSE(l.contains("values_error")) << l.dump();
    // The raw signed bytes are kept and verify.
    auto raw = crypto::from_base64(l["raw"].get<std::string>()).value();
    EXPECT_EQ(raw, b.payloads[i]);
  }
  // Exact value text for one series.
  std::size_t first_present = 0;
  while (!n.sent[0][first_present].present) {
    ++first_present;
  }
  const auto& fam = n.catalog.catalog.family_of(static_cast<std::uint32_t>(first_present));
  EXPECT_EQ(lines[1]["metrics"][0]["value"].dump(),
            nlohmann::json::parse(platform::format_value(n.sent[0][first_present].value, fam.scale))
                .dump());

  // The next batch goes on; a resent tail is recognised as duplicates of what is stored.
  Batch c = reports(n, 5, false);
  out.clear();
  r = in.ingest(c.frames(), out);
  EXPECT_EQ(r.ack_seq, 15u);
  EXPECT_EQ(lines_of(out).size(), 5u);
  out.clear();
  std::vector<protocol::Frame> again{{FrameKind::report, c.payloads[4], 0}};
  r = in.ingest(again, out);
  EXPECT_EQ(r.duplicates, 1u);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(r.rejected.empty());
}

TEST(Ingest, VerifyAllChecksEverySignature) {
  Node n("node-1");
  NodeIngest in(n.id, n.key->public_key(), {.verify_all = true});
  std::string out;
  auto r = in.ingest(reports(n, 6, true).frames(), out);
  EXPECT_EQ(r.signatures_checked, 6u);
  EXPECT_EQ(r.ack_seq, 6u);
  for (const auto& l : lines_of(out)) {
    if (l["type"] == "report") {
      EXPECT_EQ(l["verified_by"], l["seq"]);
    }
  }
}

TEST(Ingest, AnAlteredReportRejectsTheBatchBackToTheLastGoodOne) {
  Node n("node-1");
  NodeIngest in(n.id, n.key->public_key(), {});
  Batch b = reports(n, 10, true);
  b.payloads[5][30] ^= 1;  // report 5's message: its digest changes, report 6's link breaks
  std::string out;
  auto r = in.ingest(b.frames(), out);
  EXPECT_FALSE(r.rejected.empty());
  EXPECT_EQ(r.ack_seq, 4u) << r.rejected;
  auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 5u);  // catalog + 1..4
  EXPECT_EQ(lines.back()["seq"], 4);
  EXPECT_EQ(in.have_seq(), 4u);
}

TEST(Ingest, ABadLastSignatureKeepsTheReportsItsPredecessorVouchesFor) {
  Node n("node-1");
  NodeIngest in(n.id, n.key->public_key(), {});
  Batch b = reports(n, 10, true);
  b.payloads[10][b.payloads[10].size() - 5] ^= 1;  // report 10's signature
  std::string out;
  auto r = in.ingest(b.frames(), out);
  EXPECT_EQ(r.ack_seq, 9u);
  EXPECT_NE(r.rejected.find("signature of report 10"), std::string::npos) << r.rejected;
  EXPECT_EQ(in.have_seq(), 9u);
}

TEST(Ingest, ReplayForkAndAnotherNodeAreRefused) {
  Node n("node-1");
  NodeIngest in(n.id, n.key->public_key(), {});
  Batch b = reports(n, 5, true);
  std::string out;
  ASSERT_EQ(in.ingest(b.frames(), out).ack_seq, 5u);
  out.clear();
  std::vector<protocol::Frame> replay{{FrameKind::report, b.payloads[2], 0}};
  auto r = in.ingest(replay, out);
  EXPECT_NE(r.rejected.find("replayed"), std::string::npos) << r.rejected;
  EXPECT_TRUE(out.empty());

  Node other("node-2");
  Batch o = reports(other, 1, true);
  r = in.ingest(o.frames(), out);
  EXPECT_NE(r.rejected.find("claims node"), std::string::npos) << r.rejected;

  // Signed by another key with the right node id: the signature does not verify.
  Node impostor("node-1");
  impostor.seq = 5;
  impostor.prev = in.have_digest();
  Batch i = reports(impostor, 2, true);
  out.clear();
  r = in.ingest(i.frames(), out);
  EXPECT_FALSE(r.rejected.empty());
  EXPECT_EQ(r.ack_seq, 0u);
  EXPECT_EQ(in.have_seq(), 5u);
}

TEST(Ingest, GapsInTheChainAndSignedGapRecords) {
  Node n("node-1", 100);
  NodeIngest in(n.id, n.key->public_key(), {});
  Batch b = reports(n, 3, true);
  (void)n.next();  // 4 and 5 never arrive
  (void)n.next();
  b.add(FrameKind::gap, n.gap(4, 5));
  b.add(FrameKind::report, n.next());
  b.add(FrameKind::report, n.next());
  std::string out;
  auto r = in.ingest(b.frames(), out);
  EXPECT_TRUE(r.rejected.empty()) << r.rejected;
  EXPECT_EQ(r.ack_seq, 7u);
  EXPECT_EQ(r.chain_gaps, 2u);
  EXPECT_EQ(r.gaps, 1u);
  auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 7u);  // catalog, 1, 2, 3, gap, 6, 7
  EXPECT_EQ(lines[4]["type"], "gap");
  EXPECT_EQ(lines[4]["from_seq"], 4);
  // 6 and 7 were coded against the lost 5: stored, signed, values pending a keyframe.
  EXPECT_TRUE(lines[5].contains("values_error"));

  Batch bad;
  bad.add(FrameKind::gap, n.gap(8, 9));
  bad.payloads[0].back() ^= 1;
  out.clear();
  r = in.ingest(bad.frames(), out);
  EXPECT_NE(r.rejected.find("gap record"), std::string::npos);
}

TEST(Ingest, StateIsRebuiltFromTheSinkAlone) {
  Node n("node-1", 50);
  NodeIngest in(n.id, n.key->public_key(), {});
  std::string sink;
  (void)in.ingest(reports(n, 8, true).frames(), sink);
  // A restarted collector reads its sink back.
  NodeIngest again(n.id, n.key->public_key(), {});
  for (const auto& l : lines_of(sink)) {
    auto raw = crypto::from_base64(l["raw"].get<std::string>()).value();
    FrameKind k = l["type"] == "catalog" ? FrameKind::catalog : FrameKind::report;
    ASSERT_TRUE(again.restore(k, raw));
  }
  EXPECT_EQ(again.have_seq(), 8u);
  EXPECT_EQ(again.have_digest(), in.have_digest());
  // Deltas after the restart decode: the decoder state came back too.
  std::string out;
  auto r = again.ingest(reports(n, 2, false).frames(), out);
  EXPECT_EQ(r.ack_seq, 10u);
  for (const auto& l : lines_of(out)) {
    EXPECT_FALSE(l.contains("values_error")) << l.dump();
  }
}

TEST(Ingest, HostileFramesAreRefusedNotCrashed) {
  Node n("node-1");
  NodeIngest in(n.id, n.key->public_key(), {});
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200; ++i) {
    Bytes junk(rng() % 300);
    for (auto& b : junk) {
      b = static_cast<std::uint8_t>(rng());
    }
    std::vector<protocol::Frame> f{{static_cast<FrameKind>(1 + rng() % 3), junk, 0}};
    std::string out;
    auto r = in.ingest(f, out);
    EXPECT_EQ(r.ack_seq, 0u);
  }
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(Store, EveryReportOnceAcrossRestartsAndATornTail) {
  testing::TempDir dir;
  const std::string path = dir / "sink.jsonl";
  Node n("node-1", 3);
  Batch first = reports(n, 5, true);
  {
    asio::io_context io{1};
    auto store = open_jsonl(io, path);
    auto& node = *store->node(n.id, n.key->public_key()).value();
    auto r = commit_now(io, *store, node, first.frames()).value();
    EXPECT_EQ(r.ack_seq, 5u);
  }
  // A crash mid-append leaves half a line.
  {
    std::ofstream out(path, std::ios::app);
    out << R"({"type":"report","node":"node-1","seq":6,"met)";
  }
  asio::io_context io{1};
  auto store = open_jsonl(io, path);
  EXPECT_GT(store->stats().bytes_cut, 0u);
  EXPECT_EQ(store->stats().records_replayed, 6u);  // catalog + 5 reports
  auto& node = *store->node(n.id, n.key->public_key()).value();
  EXPECT_EQ(node.have_seq(), 5u);
  // The agent did not get its ack for 4..5 and resends them with 6..8: 4 and 5 are duplicates
  // (report 5 is), 6..8 new and decodable (deltas against the replayed state).
  Batch second;
  second.add(FrameKind::report, first.payloads[5]);
  for (int i = 0; i < 3; ++i) {
    second.add(FrameKind::report, n.next());
  }
  auto r = commit_now(io, *store, node, second.frames()).value();
  EXPECT_EQ(r.duplicates, 1u);
  EXPECT_EQ(r.ack_seq, 8u);
  auto lines = lines_of(read_all(path));
  std::vector<int> seqs;
  for (const auto& l : lines) {
    if (l["type"] == "report") {
      seqs.push_back(l["seq"].get<int>());
      EXPECT_FALSE(l.contains("values_error")) << l.dump();
    }
  }
  EXPECT_EQ(seqs, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(Store, UnreadableLinesAreSkippedAndCounted) {
  testing::TempDir dir;
  const std::string path = dir / "sink.jsonl";
  {
    std::ofstream out(path);
    out << "not json\n{\"type\":\"report\"}\n";
  }
  asio::io_context io{1};
  auto store = open_jsonl(io, path);
  EXPECT_EQ(store->stats().lines_unreadable, 2u);
  EXPECT_EQ(store->stats().bytes_cut, 0u);
}

}  // namespace
}  // namespace gridnode::collector
