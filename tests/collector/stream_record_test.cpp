// The compact stream record: what the JetStream sink publishes, and what export and capacity read
// back. The key property: rendering a node's stream records gives, byte for byte, the lines the
// JSONL sink writes for the same reports.
#include "gridnode/collector/stream_record.hpp"

#include <gtest/gtest.h>

#include <random>

#include "gridnode/collector/capacity.hpp"
#include "gridnode/collector/ingest.hpp"
#include "signing_node.hpp"

namespace gridnode::collector {
namespace {

using protocol::Bytes;
using protocol::FrameKind;
using testing::Batch;
using testing::Node;
using testing::reports;

constexpr std::uint64_t kReceived = 1'764'000'000'123'456'789ull;
std::uint64_t fixed_clock() { return kReceived; }

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// One batch through two NodeIngests fed alike: the JSONL sink's lines and the stream records.
struct Twin {
  explicit Twin(const Node& n)
      : jsonl(n.id, n.key->public_key(), {.clock_ns = &fixed_clock}),
        stream(n.id, n.key->public_key(),
               {.encoder = &stream_record_encoder, .clock_ns = &fixed_clock}) {}
  void ingest(const Batch& b) {
    const auto frames = b.frames();
    IngestResult a = jsonl.ingest(frames, lines);
    std::string out;
    std::vector<RecordInfo> infos;
    IngestResult c = stream.ingest(frames, out, &infos);
    EXPECT_EQ(a.ack_seq, c.ack_seq);
    EXPECT_EQ(a.rejected, c.rejected);
    for (const auto& r : infos) {
      records.push_back(out.substr(r.offset, r.size));
      kinds.push_back(r.kind);
    }
  }
  NodeIngest jsonl, stream;
  std::string lines;                 // what the JSONL sink holds
  std::vector<std::string> records;  // what JetStream holds, one message each
  std::vector<FrameKind> kinds;
};

TEST(StreamRecord, ARoundTripKeepsEveryField) {
  Node n("node-1");
  n.labels = {{"rack", "r7"}, {"region", "east"}, {"site", "dc1"}};
  Twin t(n);
  t.ingest(reports(n, 6, true));
  ASSERT_EQ(t.records.size(), 7u);
  auto cat = parse_stream_record(bytes_of(t.records[0])).value();
  EXPECT_EQ(cat.kind, StreamKind::catalog);
  EXPECT_EQ(cat.node, "node-1");
  EXPECT_EQ(cat.digest, n.catalog.digest);
  EXPECT_EQ(Bytes(cat.payload.begin(), cat.payload.end()), n.catalog.bytes);
  for (std::uint64_t seq = 1; seq <= 6; ++seq) {
    auto rec = parse_stream_record(bytes_of(t.records[seq])).value();
    EXPECT_EQ(rec.kind, StreamKind::report);
    EXPECT_EQ(rec.node, "node-1");
    EXPECT_EQ(rec.header.seq, seq);
    EXPECT_EQ(rec.header.time_ns, 1'764'000'000'000'000'000ull + seq);
    EXPECT_EQ(rec.header.node_labels, n.labels);  // resolved also for same-identity deltas
    EXPECT_EQ(rec.header.catalog, n.catalog.digest);
    EXPECT_EQ(rec.header.boot_id[0], 9);
    EXPECT_EQ(rec.header.keyframe, seq == 1 || seq == 5);  // keyframe interval 4
    EXPECT_EQ(rec.verified_by, 6u);
    EXPECT_EQ(rec.received_ns, kReceived);
    ASSERT_TRUE(rec.has_values);
    std::vector<protocol::Slot> values;
    ASSERT_TRUE(decode_stream_values(rec.values, n.catalog.catalog.series.size(), values));
    const auto& sent = n.sent[seq - 1];
    ASSERT_EQ(values.size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
      EXPECT_EQ(values[i].present, sent[i].present) << i;
      if (sent[i].present) {
        EXPECT_EQ(values[i].value, sent[i].value) << i;
      }
    }
    auto split = protocol::split_envelope(rec.payload).value();
    EXPECT_EQ(crypto::sha256(split.message), rec.digest);
  }
  // A report of 40 series is a few hundred bytes, its JSON line several times that.
  EXPECT_LT(t.records[2].size() * 3, t.lines.size() / 7);
}

// The exporter's promise: the archive it renders from the stream equals the JSONL sink's file.
// Catalog, keyframes and deltas, events, labels that need escaping, extreme values, a gap in the
// chain, a signed gap record, reports whose values could not be decoded (catalog not received).
TEST(StreamRecord, RenderedRecordsEqualTheJsonlSinksLines) {
  Node n("node-7", 5);
  n.labels = {{"region", "east \"quoted\""}, {"site", "d\xffq\\1"}};
  n.events = {{protocol::EventKind::policy, 4, "gpu-rule", "terminated \"x\"\n", {{"pid", "42"}}}};
  Twin t(n);
  t.ingest(reports(n, 2, false));  // no catalog yet: values_error
  t.ingest(reports(n, 3, true));
  std::mt19937_64 rng(3);
  for (int i = 0; i < 8; ++i) {
    testing::evolve(rng, n.catalog.catalog, n.values, 0.2, 0.3);
    t.ingest(reports(n, 2, false));
  }
  n.next();  // lost on the way: a hole in the chain
  n.next();
  Batch gap;
  gap.add(FrameKind::gap, n.gap(40, 41));
  t.ingest(gap);
  t.ingest(reports(n, 6, false));
  ASSERT_EQ(t.records.size(), 29u);  // 2 + catalog + 3 + 16 + gap record + 6

  StreamRecordRenderer renderer;
  std::string rendered;
  for (const auto& r : t.records) {
    auto ok = renderer.render(bytes_of(r), rendered);
    ASSERT_TRUE(ok) << ok.error().message();
  }
  EXPECT_NE(t.lines.find("\"values_error\""), std::string::npos);
  EXPECT_NE(t.lines.find("\"type\":\"gap\""), std::string::npos);
  EXPECT_NE(t.lines.find("terminated"), std::string::npos);
  EXPECT_EQ(rendered, t.lines);
}

TEST(StreamRecord, AJsonLineIsPassedThrough) {
  StreamRecordRenderer renderer;
  std::string out = "x";
  const std::string line = R"({"type":"report","node":"n1","seq":1,"metrics":[]})";
  ASSERT_TRUE(renderer.render(bytes_of(line), out));
  EXPECT_EQ(out, "x" + line + "\n");
}

TEST(StreamRecord, TruncatedOrGarbageRecordsAreRefusedWithAClearError) {
  Node n("node-1");
  Twin t(n);
  t.ingest(reports(n, 2, true));
  const std::string& good = t.records[2];
  StreamRecordRenderer renderer;
  std::string out;
  ASSERT_TRUE(renderer.render(bytes_of(t.records[0]), out));  // the catalog
  out.clear();
  // Every truncation is an error naming what is wrong, and leaves the output alone.
  for (std::size_t len = 0; len < good.size(); ++len) {
    const std::string cut = good.substr(0, len);
    auto rec = parse_stream_record(bytes_of(cut));
    ASSERT_FALSE(rec) << len;
    EXPECT_EQ(rec.error().code, std::errc::bad_message) << len;
    EXPECT_NE(rec.error().message().find("stream record"), std::string::npos)
        << rec.error().message();
    EXPECT_FALSE(renderer.render(bytes_of(cut), out));
    EXPECT_TRUE(out.empty()) << len;
  }
  auto trailing = parse_stream_record(bytes_of(good + "x"));
  ASSERT_FALSE(trailing);
  EXPECT_NE(trailing.error().message().find("bytes after the envelope"), std::string::npos);
  std::string newer = good;
  newer[3] = 2;
  auto v2 = parse_stream_record(bytes_of(newer));
  ASSERT_FALSE(v2);
  EXPECT_EQ(v2.error().code, std::errc::not_supported);
  EXPECT_NE(v2.error().message().find("version 2"), std::string::npos);
  // Random bytes after the magic, and flipped bytes in a good record: an error or a record, never
  // a crash (the values are checked against the catalog when rendered).
  std::mt19937_64 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::string g = i % 2 ? std::string(kStreamRecordMagic) + '\1' : good;
    if (i % 2) {
      for (std::size_t k = rng() % 300; k > 0; --k) {
        g += static_cast<char>(rng());
      }
    } else {
      for (int k = 0; k < 3; ++k) {
        g[rng() % g.size()] = static_cast<char>(rng());
      }
    }
    std::string sink;
    (void)renderer.render(bytes_of(g), sink);
    CapacityReader reader;
    (void)reader.read(bytes_of(g));
  }
  // A report whose catalog is not known: an error that names the catalog.
  StreamRecordRenderer fresh;
  auto r = fresh.render(bytes_of(good), out);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("names catalog " + crypto::to_hex(n.catalog.digest)),
            std::string::npos)
      << r.error().message();
  EXPECT_FALSE(fresh.render(bytes_of("not a record"), out));
  EXPECT_TRUE(out.empty());
}

TEST(StreamRecord, ValuesBlocksAreCheckedAgainstTheCatalog) {
  Node n("node-1");
  Twin t(n);
  t.ingest(reports(n, 1, true));
  auto rec = parse_stream_record(bytes_of(t.records[1])).value();
  std::vector<protocol::Slot> values;
  const std::size_t series = n.catalog.catalog.series.size();
  ASSERT_TRUE(decode_stream_values(rec.values, series, values));
  auto other = decode_stream_values(rec.values, series + 1, values);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message().find("catalog has"), std::string::npos);
  Bytes cut(rec.values.begin(), rec.values.end() - 1);
  EXPECT_FALSE(decode_stream_values(cut, series, values));
}

// A catalog carrying the accelerator summary and dcgm-exporter's series, and a report of it.
struct GpuNode {
  GpuNode() : n("gpu-1") {
    platform::Catalog c;
    auto fam = [&c](const char* name, platform::Scale scale = {}) {
      return c.add_family({name, "", platform::MetricType::gauge, scale, ""});
    };
    const auto total = fam("gridnode_accelerators");
    const auto busy = fam("gridnode_accelerators_busy");
    const auto idle = fam("gridnode_accelerators_idle");
    const auto mem = fam("gridnode_accelerator_memory_free_bytes");
    const auto power = fam("gridnode_accelerator_power_headroom_watts", {1, -3});
    const auto temp = fam("node_hwmon_temp_celsius", {1, -3});
    const auto fb = fam("DCGM_FI_DEV_FB_FREE");
    c.add_series(total, {{"modelName", "NVIDIA A100"}, {"vendor", "nvidia"}});
    c.add_series(busy, {{"vendor", "nvidia"}});
    c.add_series(idle, {{"vendor", "nvidia"}});
    c.add_series(mem, {{"vendor", "nvidia"}});
    c.add_series(power, {{"vendor", "nvidia"}});
    c.add_series(temp, {{"chip", "c0"}, {"sensor", "temp1"}});
    c.add_series(fb, {{"gpu", "0"}, {"modelName", "NVIDIA A100"}});
    n.catalog = protocol::EncodedCatalog::of(std::move(c));
    n.labels = {{"region", "east"}, {"site", "dc1"}};
  }
  Bytes report(std::uint64_t total, std::uint64_t busy, std::uint64_t idle, std::uint64_t mem,
               std::uint64_t milliwatts) {
    n.values = {{platform::Value::of_unsigned(total), true},
                {platform::Value::of_unsigned(busy), true},
                {platform::Value::of_unsigned(idle), true},
                {platform::Value::of_unsigned(mem), true},
                {platform::Value::of_unsigned(milliwatts), true},
                {platform::Value::of_signed(-1500), true},
                {platform::Value::of_unsigned(0), false}};
    protocol::ReportHeader h;
    h.node_id = n.id;
    h.node_labels = n.labels;
    h.seq = ++n.seq;
    h.time_ns = 1'800'000'000'000'000'000ull + n.seq;
    h.prev = n.prev;
    Bytes msg;
    n.encoder.encode(n.catalog, h, {}, n.values, msg);
    n.prev = protocol::sign_envelope(msg, *n.key, *n.random).value();
    return msg;
  }
  Node n;
};

TEST(StreamRecord, CapacityReadsTheValuesStraightFromTheRecord) {
  GpuNode g;
  Twin t(g.n);
  Batch b;
  b.add(FrameKind::catalog, g.n.catalog.bytes);
  b.add(FrameKind::report, g.report(8, 2, 5, 400ull << 30, 1'200'500));
  b.add(FrameKind::report, g.report(8, 3, 4, 300ull << 30, 900'000));
  t.ingest(b);
  ASSERT_EQ(t.records.size(), 3u);
  CapacityReader reader;
  auto none = reader.read(bytes_of(t.records[0]));  // the catalog: kept, nothing to apply
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  EXPECT_EQ(reader.catalogs(), 1u);
  auto c = reader.read(bytes_of(t.records[2])).value().value();
  EXPECT_EQ(c.node, "gpu-1");
  EXPECT_EQ(c.region, "east");
  EXPECT_EQ(c.site, "dc1");
  EXPECT_EQ(c.seq, 2u);
  EXPECT_EQ(c.model, "NVIDIA A100");
  EXPECT_EQ(c.accelerators, 8u);
  EXPECT_EQ(c.busy, 3u);
  EXPECT_EQ(c.unhealthy, 1u);  // 8 - 3 busy - 4 idle
  EXPECT_DOUBLE_EQ(c.memory_free_bytes, 300.0 * 1073741824.0);
  EXPECT_DOUBLE_EQ(c.power_headroom_watts, 900.0);
  // The same as reading the JSONL sink's line of that report.
  const std::size_t second = t.lines.find('\n', t.lines.find('\n') + 1);
  auto j = parse_capacity(std::string_view(t.lines).substr(second + 1)).value();
  EXPECT_EQ(j.accelerators, c.accelerators);
  EXPECT_EQ(j.busy, c.busy);
  EXPECT_EQ(j.unhealthy, c.unhealthy);
  EXPECT_EQ(j.model, c.model);
  EXPECT_DOUBLE_EQ(j.memory_free_bytes, c.memory_free_bytes);
  EXPECT_DOUBLE_EQ(j.power_headroom_watts, c.power_headroom_watts);
  EXPECT_EQ(j.time_ns, c.time_ns);
}

TEST(StreamRecord, CapacityFetchesACatalogItHasNotSeen) {
  GpuNode g;
  Twin t(g.n);
  Batch b;
  b.add(FrameKind::catalog, g.n.catalog.bytes);
  b.add(FrameKind::report, g.report(4, 1, 3, 1ull << 30, 0));
  t.ingest(b);
  CapacityReader without;
  auto refused = without.read(bytes_of(t.records[1]));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("names catalog"), std::string::npos);
  int asked = 0;
  CapacityReader with([&](const crypto::Digest& d) -> std::optional<Bytes> {
    ++asked;
    if (d != g.n.catalog.digest) {
      return std::nullopt;
    }
    return g.n.catalog.bytes;
  });
  auto c = with.read(bytes_of(t.records[1])).value().value();
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(c.accelerators, 4u);
  EXPECT_EQ(c.busy, 1u);
  (void)with.read(bytes_of(t.records[1])).value();
  EXPECT_EQ(asked, 1);  // kept
  auto garbage = with.read(bytes_of("\x01\x02"));
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message().find("neither a stream record nor a JSON line"),
            std::string::npos);
}

}  // namespace
}  // namespace gridnode::collector
