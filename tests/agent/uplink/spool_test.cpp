#include "gridnode/agent/spool.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "alloc_counter.hpp"
#include "gridnode/crypto/crypto.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/report.hpp"
#include "temp_dir.hpp"

namespace gridnode::agent {
namespace {

namespace fs = std::filesystem;
namespace fmt = spool_format;
using protocol::Bytes;
using protocol::FrameKind;
using testing::TempDir;

// A stand-in for a signed report: deterministic bytes per seq, 120…419 bytes long.
Bytes payload_for(std::uint64_t seq, std::uint64_t salt = 0) {
  Bytes b(120 + (seq * 37 + salt) % 300);
  std::uint64_t x = seq * 0x9E3779B97F4A7C15ull + salt;
  for (auto& c : b) {
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    c = static_cast<std::uint8_t>(x >> 56);
  }
  return b;
}

Bytes catalog_v(int version) {
  Bytes b(700 + version * 10, static_cast<std::uint8_t>(version));
  b[0] = 1;
  return b;
}

// Reads a segment file by docs/spool.md alone, not through the Spool.
struct RawRecord {
  std::uint64_t offset;
  std::uint8_t kind;
  std::uint8_t flags;
  std::uint64_t seq;
  Bytes payload;
};

Bytes slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void spit(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::uint64_t le(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) {
    v = (v << 8) | p[i];
  }
  return v;
}

// Every record of a well-formed segment; fails the test on anything else.
std::vector<RawRecord> parse_segment(const std::string& path) {
  Bytes f = slurp(path);
  std::vector<RawRecord> out;
  EXPECT_GE(f.size(), 8u) << path;
  if (f.size() < 8) {
    return out;
  }
  EXPECT_TRUE(std::equal(f.begin(), f.begin() + 8, fmt::kSegmentMagic.begin())) << path;
  std::size_t pos = 8;
  while (pos < f.size()) {
    EXPECT_GE(f.size() - pos, fmt::kRecordOverhead) << path << " at " << pos;
    if (f.size() - pos < fmt::kRecordOverhead) {
      break;
    }
    EXPECT_TRUE(std::equal(f.begin() + pos, f.begin() + pos + 4, fmt::kRecordMagic.begin()));
    auto length = static_cast<std::size_t>(le(&f[pos + 4], 4));
    auto crc = static_cast<std::uint32_t>(le(&f[pos + 8], 4));
    EXPECT_LE(pos + 12 + length, f.size());
    std::uint32_t c = crc32c({&f[pos + 4], 4});
    c = crc32c({&f[pos + 12], length}, c);
    EXPECT_EQ(c, crc) << path << " at " << pos;
    RawRecord r{pos, f[pos + 12], f[pos + 13], le(&f[pos + 14], 8),
                Bytes(f.begin() + static_cast<std::ptrdiff_t>(pos + 22),
                      f.begin() + static_cast<std::ptrdiff_t>(pos + 12 + length))};
    out.push_back(std::move(r));
    pos += 12 + length;
  }
  return out;
}

std::vector<std::string> segment_files(const std::string& state) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(spool_dir(state))) {
    if (e.path().extension() == ".seg") {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::uint64_t segment_bytes_on_disk(const std::string& state) {
  std::uint64_t total = 0;
  for (const auto& f : segment_files(state)) {
    total += fs::file_size(f);
  }
  return total;
}

SpoolOptions small(std::uint64_t segment = 4096) {
  SpoolOptions o;
  o.max_bytes = std::uint64_t{4} << 20;  // min segment = 4 KiB
  o.segment_bytes = segment;
  return o;
}

std::unique_ptr<Spool> open_spool(const std::string& state, SpoolOptions o = small()) {
  auto s = Spool::open(state, std::move(o));
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? std::move(*s) : nullptr;
}

void append_range(Spool& s, std::uint64_t from, std::uint64_t to, const Bytes& catalog = {}) {
  for (std::uint64_t seq = from; seq <= to; ++seq) {
    Bytes p = payload_for(seq);
    auto r = s.append(
        seq == from ? std::span<const std::uint8_t>(catalog) : std::span<const std::uint8_t>(), p,
        seq);
    ASSERT_TRUE(r.has_value()) << seq << ": " << r.error().message();
  }
}

std::vector<SpoolRecord> read_all(Spool& s, std::uint64_t after = 0) {
  std::vector<SpoolRecord> out;
  auto r = s.read(after, std::size_t{1} << 30, out);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return out;
}

// The reports of `records` must be exactly from..to with their payloads.
void expect_reports(const std::vector<SpoolRecord>& records, std::uint64_t from, std::uint64_t to,
                    std::uint64_t salt = 0) {
  std::uint64_t next = from;
  for (const auto& r : records) {
    if (r.kind != FrameKind::report) {
      continue;
    }
    ASSERT_EQ(r.seq, next);
    ASSERT_EQ(r.payload, payload_for(r.seq, r.seq == to ? salt : 0)) << r.seq;
    ++next;
  }
  EXPECT_EQ(next, to + 1);
}

TEST(Crc32c, CheckValue) {
  const std::string check = "123456789";
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(check.data()),
                                      check.size());
  EXPECT_EQ(crc32c(bytes), 0xE3069283u);  // the CRC-32C check value (RFC 3720, B.4)
  EXPECT_EQ(crc32c(bytes.subspan(4), crc32c(bytes.first(4))), 0xE3069283u);
  Bytes zeros(32, 0);
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
}

TEST(Spool, AppendReadAckRoundTrip) {
  TempDir dir;
  auto spool = open_spool(dir.path(), small(1 << 20));  // one segment: unacked_bytes is exact
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->last_report().value(), std::nullopt);
  EXPECT_TRUE(read_all(*spool).empty());
  append_range(*spool, 1, 50, catalog_v(1));

  auto all = read_all(*spool);
  ASSERT_EQ(all.size(), 51u);
  EXPECT_EQ(all[0].kind, FrameKind::catalog);
  EXPECT_EQ(all[0].payload, catalog_v(1));
  expect_reports(all, 1, 50);

  auto st = spool->stats();
  EXPECT_EQ(st.reports, 50u);
  EXPECT_EQ(st.unacked, 50u);
  EXPECT_EQ(st.oldest_seq, 1u);
  EXPECT_EQ(st.newest_seq, 50u);
  EXPECT_EQ(st.bytes, segment_bytes_on_disk(dir.path()));

  ASSERT_TRUE(spool->ack(20).has_value());
  ASSERT_TRUE(spool->ack(10).has_value());  // never back
  auto rest = read_all(*spool, 20);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest[0].kind, FrameKind::catalog);
  EXPECT_EQ(rest[0].payload, catalog_v(1));
  expect_reports(rest, 21, 50);
  st = spool->stats();
  EXPECT_EQ(st.acked_seq, 20u);
  EXPECT_EQ(st.unacked, 30u);
  // From report 21 to the end, exactly: the spool's own record sizes.
  std::uint64_t expected = 0;
  for (std::uint64_t seq = 21; seq <= 50; ++seq) {
    expected += fmt::kRecordOverhead + payload_for(seq).size();
  }
  EXPECT_EQ(st.unacked_bytes, expected);
  EXPECT_FALSE(spool->ack(51).has_value());  // beyond the newest
  ASSERT_TRUE(spool->ack(50).has_value());
  EXPECT_TRUE(read_all(*spool, 50).empty());
  EXPECT_EQ(spool->stats().unacked_bytes, 0u);
}

TEST(Spool, RejectsOutOfOrderAndBadSizes) {
  TempDir dir;
  auto spool = open_spool(dir.path());
  ASSERT_TRUE(spool);
  append_range(*spool, 5, 6, catalog_v(1));
  Bytes p = payload_for(6);
  EXPECT_EQ(spool->append({}, p, 6).error().code, std::errc::invalid_argument);
  EXPECT_EQ(spool->append({}, p, 3).error().code, std::errc::invalid_argument);
  Bytes tiny(64, 1);  // not even a signature
  EXPECT_EQ(spool->append({}, tiny, 7).error().code, std::errc::invalid_argument);
  EXPECT_TRUE(spool->append({}, p, 9).has_value());  // holes in seq are the Reporter's business
  EXPECT_EQ(spool->stats().reports, 3u);
  SpoolOptions tiny_bound;
  tiny_bound.max_bytes = 1000;
  EXPECT_EQ(Spool::open(dir / "x", tiny_bound).error().code, std::errc::invalid_argument);
  SpoolOptions no_node;
  struct NoSignature final : GapSigner {
    platform::Result<Bytes> sign_gap(const protocol::GapRecord&) override { return Bytes{}; }
  } nothing;
  no_node.signer = &nothing;
  EXPECT_EQ(Spool::open(dir / "y", no_node).error().code, std::errc::invalid_argument);
}

TEST(Spool, ReopenRecoversEverything) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path());
    ASSERT_TRUE(spool);
    append_range(*spool, 1, 300, catalog_v(1));
    ASSERT_TRUE(spool->ack(7).has_value());
    ASSERT_TRUE(spool->close().has_value());
  }
  auto spool = open_spool(dir.path());
  ASSERT_TRUE(spool);
  auto st = spool->stats();
  EXPECT_EQ(st.newest_seq, 300u);
  EXPECT_EQ(st.acked_seq, 7u);
  EXPECT_EQ(st.bytes_cut, 0u);
  EXPECT_EQ(st.bytes_skipped, 0u);
  EXPECT_EQ(st.bytes, segment_bytes_on_disk(dir.path()));
  auto all = read_all(*spool, 7);
  EXPECT_EQ(all[0].kind, FrameKind::catalog);
  expect_reports(all, 8, 300);

  // The chain resumes from the spool: seq and digest of the last report's message.
  Bytes last = payload_for(300);
  auto point = spool->last_report();
  ASSERT_TRUE(point.has_value());
  ASSERT_TRUE(point->has_value());
  EXPECT_EQ((*point)->seq, 300u);
  EXPECT_EQ((*point)->digest,
            crypto::sha256(std::span<const std::uint8_t>(last).first(last.size() - 64)));

  EXPECT_EQ(spool->append({}, payload_for(300), 300).error().code, std::errc::invalid_argument);
  append_range(*spool, 301, 310);
  expect_reports(read_all(*spool, 7), 8, 310);
}

TEST(Spool, SegmentsRollEachStartsWithTheCatalogAndAckedOnesGo) {
  TempDir dir;
  auto spool = open_spool(dir.path());
  ASSERT_TRUE(spool);
  append_range(*spool, 1, 100, catalog_v(1));
  append_range(*spool, 101, 200, catalog_v(2));  // a catalog change on 101
  auto files = segment_files(dir.path());
  ASSERT_GT(files.size(), 5u);
  std::uint64_t total_records = 0;
  bool saw_change = false;
  for (std::size_t i = 0; i < files.size(); ++i) {
    auto recs = parse_segment(files[i]);
    ASSERT_FALSE(recs.empty());
    total_records += recs.size();
    // Every segment starts with the catalog in force: a copy unless it is the change itself.
    ASSERT_EQ(recs[0].kind, 1) << files[i];
    const std::uint64_t first_report = recs[1].seq;
    EXPECT_EQ(recs[0].seq, first_report);
    EXPECT_EQ(recs[0].payload, first_report <= 100 ? catalog_v(1) : catalog_v(2)) << files[i];
    EXPECT_EQ(recs[0].flags, i == 0 || first_report == 101 ? 0 : fmt::kFlagCatalogCopy);
    // The file is named after its first report, 20 digits.
    char name[32];
    std::snprintf(name, sizeof name, "%020llu.seg", static_cast<unsigned long long>(first_report));
    EXPECT_EQ(fs::path(files[i]).filename(), name);
    EXPECT_LE(fs::file_size(files[i]), 4096u + 8 + 2 * (22 + 420) + 22 + 720);
    for (const auto& r : recs) {
      saw_change |= (r.kind == 1 && r.flags == 0 && r.seq == 101);
    }
  }
  EXPECT_TRUE(saw_change);
  EXPECT_EQ(spool->stats().records, total_records);

  ASSERT_TRUE(spool->ack(150).has_value());
  auto after = segment_files(dir.path());
  EXPECT_LT(after.size(), files.size());
  // What is left starts at or before 151, and nothing after 150 went.
  auto first = parse_segment(after.front());
  EXPECT_LE(first[1].seq, 151u);
  EXPECT_GT(first.back().seq, 150u);
  auto rest = read_all(*spool, 150);
  EXPECT_EQ(rest[0].kind, FrameKind::catalog);
  EXPECT_EQ(rest[0].payload, catalog_v(2));
  expect_reports(rest, 151, 200);
  EXPECT_EQ(spool->stats().bytes, segment_bytes_on_disk(dir.path()));

  // Everything acked: only the segment appended to stays.
  ASSERT_TRUE(spool->ack(200).has_value());
  EXPECT_EQ(segment_files(dir.path()).size(), 1u);
  EXPECT_EQ(spool->stats().unacked, 0u);
}

TEST(Spool, ReadFromAnywhereGivesTheCatalogInForceThenTheRightRecords) {
  TempDir dir;
  auto spool = open_spool(dir.path());
  ASSERT_TRUE(spool);
  append_range(*spool, 1, 99, catalog_v(1));
  append_range(*spool, 100, 250, catalog_v(2));
  for (std::uint64_t after = 0; after <= 250; ++after) {
    auto out = read_all(*spool, after);
    if (after == 250) {
      EXPECT_TRUE(out.empty());
      continue;
    }
    ASSERT_GE(out.size(), 2u) << after;
    EXPECT_EQ(out[0].kind, FrameKind::catalog) << after;
    EXPECT_EQ(out[0].payload, after < 99 ? catalog_v(1) : catalog_v(2)) << after;
    if (after == 99) {
      // The change record is itself the first thing: no stale catalog before it.
      EXPECT_EQ(out[0].seq, 100u);
      EXPECT_EQ(out[1].kind, FrameKind::report);
    }
    std::size_t catalogs = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (out[i].kind == FrameKind::catalog) {
        ++catalogs;
        if (i > 0) {  // the change, right before report 100
          EXPECT_EQ(out[i].seq, 100u);
          EXPECT_EQ(out[i + 1].seq, 100u);
          EXPECT_EQ(out[i].payload, catalog_v(2));
        }
      }
    }
    EXPECT_EQ(catalogs, after < 99 ? 2u : 1u) << after;
    expect_reports(out, after + 1, 250);
  }

  // In batches: each starts with the catalog in force, none ends on a catalog, none passes
  // its budget by more than one record, and together they are the whole stream.
  std::vector<SpoolRecord> batch;
  std::uint64_t cursor = 0;
  std::uint64_t next = 1;
  int batches = 0;
  for (;;) {
    ASSERT_TRUE(spool->read(cursor, 2000, batch).has_value());
    if (batch.empty()) {
      break;
    }
    ++batches;
    EXPECT_EQ(batch.front().kind, FrameKind::catalog);
    EXPECT_NE(batch.back().kind, FrameKind::catalog);
    std::size_t bytes = 0;
    for (std::size_t i = 1; i < batch.size(); ++i) {
      bytes += batch[i].payload.size();
      if (batch[i].kind == FrameKind::report) {
        ASSERT_EQ(batch[i].seq, next);
        ASSERT_EQ(batch[i].payload, payload_for(next));
        ++next;
      }
    }
    EXPECT_LE(bytes, 2000u);
    cursor = batch.back().seq;
  }
  EXPECT_EQ(next, 251u);
  EXPECT_GT(batches, 20);
}

// --- recovery -------------------------------------------------------------------------------

struct OneSegment {
  TempDir source;
  Bytes file;
  std::uint64_t last_record = 0;  // offset of the last record (report 10)
  std::string name = "00000000000000000001.seg";

  OneSegment() {
    auto spool = open_spool(source.path(), small(1 << 20));
    append_range(*spool, 1, 10, catalog_v(1));
    EXPECT_TRUE(spool->close().has_value());
    file = slurp(spool_dir(source.path()) + "/" + name);
    last_record = file.size() - fmt::kRecordOverhead - payload_for(10).size();
  }

  // A fresh state dir holding `bytes` as the only segment.
  std::string install(const TempDir& dir, const Bytes& bytes) const {
    fs::create_directories(spool_dir(dir.path()));
    spit(spool_dir(dir.path()) + "/" + name, bytes);
    return dir.path();
  }
};

TEST(SpoolRecovery, TornTailAtEveryByteOfTheLastRecord) {
  OneSegment seg;
  for (std::uint64_t cut = seg.last_record; cut < seg.file.size(); ++cut) {
    TempDir dir;
    Bytes torn(seg.file.begin(), seg.file.begin() + static_cast<std::ptrdiff_t>(cut));
    seg.install(dir, torn);
    {
      auto spool = open_spool(dir.path(), small(1 << 20));
      ASSERT_TRUE(spool) << cut;
      auto st = spool->stats();
      ASSERT_EQ(st.bytes_cut, cut - seg.last_record) << cut;
      ASSERT_EQ(st.newest_seq, 9u) << cut;
      ASSERT_EQ(st.bytes, seg.last_record);
      auto all = read_all(*spool);
      ASSERT_EQ(all[0].payload, catalog_v(1));
      expect_reports(all, 1, 9);
      // Appending goes on after the last good record.
      Bytes p = payload_for(10, 7);
      ASSERT_TRUE(spool->append({}, p, 10).has_value()) << cut;
    }
    auto spool = open_spool(dir.path(), small(1 << 20));
    ASSERT_TRUE(spool);
    EXPECT_EQ(spool->stats().bytes_cut, 0u) << cut;
    expect_reports(read_all(*spool), 1, 10, 7);
  }
}

TEST(SpoolRecovery, GarbageAfterTheLastRecordIsCut) {
  OneSegment seg;
  std::vector<Bytes> tails = {
      Bytes(4096, 0),  // what a power cut can leave: the size grew, the data did not land
      Bytes{0xA5, 'S', 'P', 'R', 0xff, 0xff, 0xff, 0x7f},  // a record magic, then nonsense
      Bytes{0x13},
  };
  Bytes noise(1000);
  for (std::size_t i = 0; i < noise.size(); ++i) {
    noise[i] = static_cast<std::uint8_t>(i * 131 + 7);
  }
  tails.push_back(noise);
  for (const auto& tail : tails) {
    TempDir dir;
    Bytes f = seg.file;
    f.insert(f.end(), tail.begin(), tail.end());
    seg.install(dir, f);
    auto spool = open_spool(dir.path(), small(1 << 20));
    ASSERT_TRUE(spool);
    EXPECT_EQ(spool->stats().bytes_cut, tail.size());
    expect_reports(read_all(*spool), 1, 10);
    EXPECT_EQ(fs::file_size(spool_dir(dir.path()) + "/" + seg.name), seg.file.size());
    append_range(*spool, 11, 12);
    expect_reports(read_all(*spool), 1, 12);
  }
}

TEST(SpoolRecovery, FlippedByteInTheLastRecord) {
  OneSegment seg;
  for (std::uint64_t at :
       {seg.last_record + 5, seg.last_record + 13, seg.last_record + 40, seg.file.size() - 1}) {
    TempDir dir;
    Bytes f = seg.file;
    f[at] ^= 0x10;
    seg.install(dir, f);
    auto spool = open_spool(dir.path(), small(1 << 20));
    ASSERT_TRUE(spool);
    EXPECT_EQ(spool->stats().bytes_cut, seg.file.size() - seg.last_record) << at;
    expect_reports(read_all(*spool), 1, 9);
  }
}

TEST(SpoolRecovery, EmptyOrHeaderOnlyLastSegmentIsRemoved) {
  for (std::size_t keep : {0, 3, 8, 20}) {
    TempDir dir;
    {
      auto spool = open_spool(dir.path());
      append_range(*spool, 1, 40, catalog_v(1));
      ASSERT_TRUE(spool->close().has_value());
    }
    // A segment that a crash left before its first write landed.
    Bytes partial(fmt::kSegmentMagic.begin(), fmt::kSegmentMagic.end());
    partial.resize(keep, 0xA5);
    spit(spool_dir(dir.path()) + "/00000000000000000041.seg", partial);
    auto spool = open_spool(dir.path());
    ASSERT_TRUE(spool);
    EXPECT_FALSE(fs::exists(spool_dir(dir.path()) + "/00000000000000000041.seg")) << keep;
    expect_reports(read_all(*spool), 1, 40);
    append_range(*spool, 41, 45);
    expect_reports(read_all(*spool), 1, 45);
  }
}

TEST(SpoolRecovery, CorruptRecordInAnOlderSegmentIsSkippedNotTheRest) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path());
    append_range(*spool, 1, 100, catalog_v(1));
    ASSERT_TRUE(spool->close().has_value());
  }
  auto files = segment_files(dir.path());
  ASSERT_GE(files.size(), 3u);
  auto recs = parse_segment(files[1]);
  ASSERT_GE(recs.size(), 4u);
  const RawRecord& victim = recs[2];  // a report in the middle of the second segment
  const std::uint64_t victim_size = fmt::kRecordOverhead + victim.payload.size();
  Bytes f = slurp(files[1]);
  f[victim.offset + 30] ^= 0x01;  // bit rot in its payload
  spit(files[1], f);
  // And the first segment's file magic rots too: its records are still found.
  Bytes g = slurp(files[0]);
  g[2] ^= 0xff;
  spit(files[0], g);

  auto spool = open_spool(dir.path());
  ASSERT_TRUE(spool);
  auto st = spool->stats();
  EXPECT_EQ(st.bytes_skipped, victim_size + 8);
  EXPECT_EQ(st.bytes_cut, 0u);
  auto all = read_all(*spool);
  std::vector<std::uint64_t> seqs;
  for (const auto& r : all) {
    if (r.kind == FrameKind::report) {
      seqs.push_back(r.seq);
      EXPECT_EQ(r.payload, payload_for(r.seq));
    }
  }
  ASSERT_EQ(seqs.size(), 99u);
  EXPECT_EQ(std::find(seqs.begin(), seqs.end(), victim.seq), seqs.end());
  append_range(*spool, 101, 102);
  EXPECT_EQ(spool->stats().newest_seq, 102u);
}

TEST(SpoolRecovery, CorruptTailOfAnOlderSegmentIsCutAndTheNextOneRead) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path());
    append_range(*spool, 1, 100, catalog_v(1));
    ASSERT_TRUE(spool->close().has_value());
  }
  auto files = segment_files(dir.path());
  auto recs = parse_segment(files[0]);
  Bytes f = slurp(files[0]);
  f[recs.back().offset + 1] ^= 0x40;  // the magic of its last record
  spit(files[0], f);
  auto spool = open_spool(dir.path());
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->stats().bytes_cut, f.size() - recs.back().offset);
  auto all = read_all(*spool);
  EXPECT_EQ(all.size(), 1u + 99u);  // catalog, and every report but the one cut
  for (const auto& r : all) {
    EXPECT_NE(r.seq == recs.back().seq && r.kind == FrameKind::report, true);
  }
}

// --- bound and gap records ------------------------------------------------------------------

struct Signer final : GapSigner {
  std::unique_ptr<crypto::Random> random = crypto::Random::create("spool-test").value();
  crypto::PrivateKey key = crypto::PrivateKey::generate(*random).value();
  int calls = 0;

  platform::Result<Bytes> sign_gap(const protocol::GapRecord& gap) override {
    ++calls;
    Bytes msg;
    protocol::encode_gap(gap, msg);
    if (auto d = protocol::sign_envelope(msg, key, *random); !d) {
      return tl::unexpected(d.error());
    }
    return msg;
  }
};

// The gap records of `records`, checked: signed by `key`, from this node.
std::vector<protocol::GapRecord> verified_gaps(const std::vector<SpoolRecord>& records,
                                               const crypto::PrivateKey& key) {
  std::vector<protocol::GapRecord> gaps;
  for (const auto& r : records) {
    if (r.kind != FrameKind::gap) {
      continue;
    }
    auto env = protocol::split_envelope(r.payload);
    EXPECT_TRUE(env.has_value());
    EXPECT_TRUE(protocol::verify_envelope(*env, key.public_key()));
    auto gap = protocol::decode_gap(env->message);
    EXPECT_TRUE(gap.has_value());
    EXPECT_EQ(gap->node_id, "node-7.dc1");
    EXPECT_EQ(gap->reason, "spool full (64 KiB)");
    EXPECT_GT(gap->time_ns, 0u);
    EXPECT_EQ(r.seq, gap->to_seq);
    gaps.push_back(*gap);
  }
  return gaps;
}

// Each gap record is a true statement, and when a segment holding an older gap record goes, the
// new record covers that range too, so records may overlap; their union must be exactly
// [lo, hi]: every dropped, unacknowledged report, and nothing else.
void expect_union(std::vector<protocol::GapRecord> gaps, std::uint64_t lo, std::uint64_t hi) {
  std::sort(gaps.begin(), gaps.end(),
            [](const auto& a, const auto& b) { return a.from_seq < b.from_seq; });
  EXPECT_EQ(gaps.front().from_seq, lo);
  std::uint64_t covered = lo - 1;
  for (const auto& g : gaps) {
    EXPECT_LE(g.from_seq, covered + 1);
    covered = std::max(covered, g.to_seq);
  }
  EXPECT_EQ(covered, hi);
}

SpoolOptions bounded(Signer& signer) {
  SpoolOptions o;
  o.max_bytes = 64 << 10;
  o.segment_bytes = 8 << 10;
  o.node_id = "node-7.dc1";
  o.signer = &signer;
  return o;
}

TEST(SpoolBound, OldestGoAndASignedGapRecordSaysWhich) {
  TempDir dir;
  Signer signer;
  auto spool = open_spool(dir.path(), bounded(signer));
  ASSERT_TRUE(spool);
  for (std::uint64_t seq = 1; seq <= 1000; ++seq) {
    Bytes p = payload_for(seq);
    Bytes cat = seq == 1 ? catalog_v(1) : Bytes{};
    ASSERT_TRUE(spool->append(cat, p, seq).has_value()) << seq;
    // The documented bound: the segment files never exceed max_bytes.
    ASSERT_LE(segment_bytes_on_disk(dir.path()), 64u << 10) << seq;
    ASSERT_EQ(spool->stats().bytes, segment_bytes_on_disk(dir.path()));
  }
  auto st = spool->stats();
  EXPECT_GT(st.gaps_created, 0u);
  EXPECT_EQ(signer.calls, static_cast<int>(st.gaps_created));
  EXPECT_EQ(st.reports_dropped, st.oldest_seq - 1);

  auto all = read_all(*spool);
  ASSERT_GE(all.size(), 3u);
  EXPECT_EQ(all[0].kind, FrameKind::catalog);
  EXPECT_EQ(all[0].payload, catalog_v(1));
  // In order: the gap records first (they sort by to_seq, before the reports after the hole),
  // and together they say exactly which reports went: 1 … oldest - 1.
  std::size_t i = 1;
  while (all[i].kind == FrameKind::gap) {
    ++i;
  }
  std::vector<SpoolRecord> gap_records(all.begin() + 1, all.begin() + static_cast<long>(i));
  auto gaps = verified_gaps(gap_records, signer.key);
  ASSERT_FALSE(gaps.empty());
  EXPECT_EQ(gaps.size(), verified_gaps(all, signer.key).size());  // no gap anywhere else
  expect_union(gaps, 1, st.oldest_seq - 1);
  expect_reports(all, st.oldest_seq, 1000);

  // After an ack, a drop reports only what was not acknowledged.
  ASSERT_TRUE(spool->ack(st.oldest_seq + 20).has_value());
  const std::uint64_t acked = st.oldest_seq + 20;
  const std::uint64_t dropped_before = spool->stats().reports_dropped;
  for (std::uint64_t seq = 1001; seq <= 1400; ++seq) {
    Bytes p = payload_for(seq);
    ASSERT_TRUE(spool->append({}, p, seq).has_value());
  }
  auto later = read_all(*spool, acked);
  auto later_gaps = verified_gaps(later, signer.key);
  ASSERT_FALSE(later_gaps.empty());
  expect_union(later_gaps, acked + 1, spool->stats().oldest_seq - 1);
  EXPECT_EQ(later.back().seq, 1400u);
  st = spool->stats();
  EXPECT_EQ(st.reports_dropped - dropped_before, st.oldest_seq - 1 - acked);

  // And it all survives a reopen: gaps included, in order.
  ASSERT_TRUE(spool->close().has_value());
  spool = open_spool(dir.path(), bounded(signer));
  ASSERT_TRUE(spool);
  auto again = read_all(*spool, acked);
  ASSERT_EQ(again.size(), later.size());
  for (std::size_t k = 0; k < later.size(); ++k) {
    EXPECT_EQ(again[k].kind, later[k].kind);
    EXPECT_EQ(again[k].seq, later[k].seq);
    EXPECT_EQ(again[k].payload, later[k].payload);
  }
}

TEST(SpoolBound, DropsWithoutASignerStillKeepTheBound) {
  TempDir dir;
  SpoolOptions o;
  o.max_bytes = 16 << 10;
  o.segment_bytes = 1 << 20;
  auto spool = open_spool(dir.path(), o);
  ASSERT_TRUE(spool);
  for (std::uint64_t seq = 1; seq <= 500; ++seq) {
    Bytes p = payload_for(seq);
    ASSERT_TRUE(spool->append(seq == 1 ? catalog_v(1) : Bytes{}, p, seq).has_value());
    ASSERT_LE(segment_bytes_on_disk(dir.path()), 16u << 10);
  }
  EXPECT_EQ(spool->stats().gaps_created, 0u);
  auto all = read_all(*spool);
  EXPECT_EQ(all[0].payload, catalog_v(1));  // the catalog outlived its first segment
  expect_reports(all, spool->stats().oldest_seq, 500);
  // A report so large that the segment appended to must go too: a new one is started and the
  // old one dropped, still within the bound, the catalog still first.
  Bytes big(15500, 9);  // with the catalog copy, just fits a fresh segment under 16 KiB
  ASSERT_TRUE(spool->append({}, big, 501).has_value());
  EXPECT_LE(segment_bytes_on_disk(dir.path()), 16u << 10);
  EXPECT_EQ(segment_files(dir.path()).size(), 1u);
  all = read_all(*spool);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].payload, catalog_v(1));
  EXPECT_EQ(all[1].payload, big);
  append_range(*spool, 502, 520);  // and the big one goes in turn
  EXPECT_LE(segment_bytes_on_disk(dir.path()), 16u << 10);
  all = read_all(*spool);
  EXPECT_EQ(all[0].payload, catalog_v(1));
  expect_reports(all, spool->stats().oldest_seq, 520);
  Bytes huge(20 << 10, 1);
  EXPECT_EQ(spool->append({}, huge, 521).error().code, std::errc::no_buffer_space);
}

// --- ack persistence and flushing -----------------------------------------------------------

TEST(SpoolAck, PersistedOnFlushAndReadContinuesAfterItOnReopen) {
  TempDir dir;
  const std::string acked_file = spool_dir(dir.path()) + "/acked";
  SpoolOptions o = small();
  o.ack_interval = std::chrono::hours(1);
  {
    auto spool = open_spool(dir.path(), o);
    append_range(*spool, 1, 60, catalog_v(1));
    ASSERT_TRUE(spool->ack(30).has_value());
    EXPECT_FALSE(spool->flush_due() && spool->stats().unsynced_records == 0);
    ASSERT_TRUE(spool->flush().has_value());
    EXPECT_FALSE(fs::exists(acked_file));  // at most every ack_interval…
    EXPECT_EQ(spool->stats().acked_persisted_seq, 0u);
    ASSERT_TRUE(spool->flush(true).has_value());  // …or on demand
    std::ifstream in(acked_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "30\n");
    EXPECT_EQ(spool->stats().acked_persisted_seq, 30u);
    EXPECT_EQ(fs::status(acked_file).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
  }
  auto spool = open_spool(dir.path(), o);
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->stats().acked_seq, 30u);
  EXPECT_EQ(spool->stats().unacked, 30u);
  auto rest = read_all(*spool, spool->stats().acked_seq);
  EXPECT_EQ(rest[0].kind, FrameKind::catalog);
  expect_reports(rest, 31, 60);
}

TEST(SpoolAck, UnreadableWatermarkMeansResendNotSkip) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path());
    append_range(*spool, 1, 10, catalog_v(1));
  }
  spit(spool_dir(dir.path()) + "/acked", Bytes{'x', '\n'});
  spit(spool_dir(dir.path()) + "/.acked.tmp-1-2-3", Bytes{'9'});  // a crash's leftover
  auto spool = open_spool(dir.path());
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->stats().acked_seq, 0u);
  EXPECT_FALSE(fs::exists(spool_dir(dir.path()) + "/.acked.tmp-1-2-3"));
  expect_reports(read_all(*spool), 1, 10);
}

TEST(SpoolAck, WatermarkBeyondTheNewestReportIsLowered) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path());
    append_range(*spool, 1, 10, catalog_v(1));
  }
  spit(spool_dir(dir.path()) + "/acked", Bytes{'9', '9', '9', '\n'});
  auto spool = open_spool(dir.path());
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->stats().acked_seq, 10u);
  append_range(*spool, 11, 12);
  expect_reports(read_all(*spool, spool->stats().acked_seq), 11, 12);  // not silently skipped
}

TEST(SpoolFlush, DueByCountOrInterval) {
  TempDir dir;
  SpoolOptions o = small();
  o.fsync_every = 3;
  o.fsync_interval = std::chrono::hours(1);
  auto spool = open_spool(dir.path(), o);
  EXPECT_FALSE(spool->flush_due());
  append_range(*spool, 1, 2, catalog_v(1));  // 3 records: catalog + 2 reports
  EXPECT_TRUE(spool->flush_due());
  ASSERT_TRUE(spool->flush().has_value());
  EXPECT_FALSE(spool->flush_due());
  EXPECT_EQ(spool->stats().synced_seq, 2u);
  EXPECT_EQ(spool->stats().unsynced_records, 0u);
  append_range(*spool, 3, 4);
  EXPECT_FALSE(spool->flush_due());
  append_range(*spool, 5, 5);
  EXPECT_TRUE(spool->flush_due());

  TempDir dir2;
  o.fsync_every = 0;
  o.fsync_interval = std::chrono::milliseconds(0);
  auto by_time = open_spool(dir2.path(), o);
  EXPECT_FALSE(by_time->flush_due());
  append_range(*by_time, 1, 1, catalog_v(1));
  EXPECT_TRUE(by_time->flush_due());
}

TEST(SpoolFlush, ConcurrentFlushWhileAppending) {
  TempDir dir;
  SpoolOptions o = small(16 << 10);
  auto spool = open_spool(dir.path(), o);
  std::atomic<bool> done{false};
  std::atomic<int> flushes{0};
  std::thread flusher([&] {
    while (!done) {
      EXPECT_TRUE(spool->flush().has_value());
      ++flushes;
    }
  });
  // The flusher is running before the first append (on a loaded machine it may otherwise first
  // be scheduled after the last one, and nothing would overlap).
  while (flushes.load() == 0) {
    std::this_thread::yield();
  }
  append_range(*spool, 1, 3000, catalog_v(1));
  for (std::uint64_t a = 100; a <= 2900; a += 100) {
    ASSERT_TRUE(spool->ack(a).has_value());
  }
  done = true;
  flusher.join();
  ASSERT_TRUE(spool->flush(true).has_value());
  EXPECT_EQ(spool->stats().synced_seq, 3000u);
  expect_reports(read_all(*spool, 2900), 2901, 3000);
}

TEST(Spool, AppendAllocatesNothingInSteadyState) {
  TempDir dir;
  auto spool = open_spool(dir.path(), small(1 << 20));
  append_range(*spool, 1, 20, catalog_v(1));
  Bytes p = payload_for(20);
  testing::AllocationCounter counter;
  counter.start();
  for (std::uint64_t seq = 21; seq <= 520; ++seq) {
    if (!spool->append({}, p, seq)) {
      break;
    }
  }
  EXPECT_EQ(counter.stop(), 0u);
  EXPECT_EQ(spool->stats().newest_seq, 520u);
}

// ENOSPC, EIO and EFBIG all reach append() the same way: a failed or short write. RLIMIT_FSIZE
// makes one happen for real, in a child so that the test process keeps its limits.
TEST(Spool, WriteFailureLosesNothingAlreadyWritten) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path(), small(1 << 20));
    append_range(*spool, 1, 10, catalog_v(1));
  }
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::signal(SIGXFSZ, SIG_IGN);
    auto opened = Spool::open(dir.path(), small(1 << 20));
    if (!opened) {
      ::_exit(2);
    }
    auto& spool = *opened;
    struct rlimit lim {};
    lim.rlim_cur = lim.rlim_max = spool->stats().bytes + 3000;  // a few reports more
    ::setrlimit(RLIMIT_FSIZE, &lim);
    std::uint64_t seq = 11;
    for (; seq < 1000; ++seq) {
      Bytes p = payload_for(seq);
      auto r = spool->append({}, p, seq);
      if (!r) {
        const bool efbig = r.error().code == std::errc::file_too_large;
        // The failed append leaves a usable spool: the next one fails the same way.
        auto again = spool->append({}, p, seq);
        ::_exit(efbig && !again && again.error().code == std::errc::file_too_large ? 0 : 3);
      }
      std::uint64_t done = seq;
      if (::write(fds[1], &done, sizeof done) != sizeof done) {
        ::_exit(4);
      }
    }
    ::_exit(5);
  }
  ::close(fds[1]);
  std::uint64_t last_ok = 10;
  std::uint64_t v = 0;
  while (::read(fds[0], &v, sizeof v) == sizeof v) {
    last_ok = v;
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_GT(last_ok, 10u);
  auto spool = open_spool(dir.path(), small(1 << 20));
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->stats().bytes_cut, 0u);  // the partial write was truncated away
  expect_reports(read_all(*spool), 1, last_ok);
}

}  // namespace
}  // namespace gridnode::agent
