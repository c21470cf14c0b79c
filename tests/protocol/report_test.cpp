#include "gridnode/protocol/report.hpp"

#include <algorithm>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "alloc_counter.hpp"
#include "gridnode/protocol/catalog.hpp"
#include "gridnode/protocol/chain.hpp"
#include "report_fixtures.hpp"

namespace gridnode::protocol {
namespace {

using testing::evolve;
using testing::random_catalog;

ReportHeader header(std::uint64_t seq) {
  ReportHeader h;
  h.node_id = "node-17";
  h.node_labels = {{"rack", "r3"}, {"region", "east"}, {"site", "dc1"}};
  h.boot_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  h.seq = seq;
  h.time_ns = 1'764'000'000'000'000'000ull + seq * 1'000'000'000ull;
  return h;
}

// The same number: bits, and negative exactly when it was a negative signed value.
void expect_same_values(const std::vector<Slot>& sent, const std::vector<Slot>& got) {
  ASSERT_EQ(sent.size(), got.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    ASSERT_EQ(sent[i].present, got[i].present) << "series " << i;
    if (!sent[i].present) {
      continue;
    }
    ASSERT_EQ(sent[i].value.bits, got[i].value.bits) << "series " << i;
    ASSERT_EQ(sent[i].value.negative(), got[i].value.negative()) << "series " << i;
    ASSERT_EQ(platform::format_value(sent[i].value, {}), platform::format_value(got[i].value, {}));
  }
}

struct Stream {
  explicit Stream(std::uint32_t keyframe_interval) : encoder(keyframe_interval) {}
  ReportEncoder encoder;
  ReportDecoder decoder;
  crypto::Digest prev{};
  std::uint64_t seq = 0;

  // Encodes and decodes one report; returns the decoded one.
  Report roundtrip(const EncodedCatalog& cat, const std::vector<Slot>& values,
                   const std::vector<Event>& events = {}) {
    ReportHeader h = header(++seq);
    h.prev = prev;
    Bytes msg;
    encoder.encode(cat, h, events, values, msg);
    auto rep = decoder.decode(msg, cat);
    EXPECT_TRUE(rep) << rep.error().message();
    if (!rep) {
      return {};
    }
    EXPECT_EQ(rep->header, h);
    EXPECT_EQ(rep->events, events);
    EXPECT_EQ(rep->message_size, msg.size());
    prev = rep->digest;
    return std::move(*rep);
  }
};

TEST(Report, RandomCatalogsAndValuesRoundTripExactly) {
  std::mt19937_64 rng(20261125);
  for (int round = 0; round < 40; ++round) {
    auto cat = EncodedCatalog::of(random_catalog(rng, 1 + rng() % 20, rng() % 300));
    Stream s(1 + rng() % 8);
    std::vector<Slot> values;
    for (int r = 0; r < 25; ++r) {
      evolve(rng, cat.catalog, values, 0.05, 0.05);
      Report got = s.roundtrip(cat, values);
      expect_same_values(values, got.values);
    }
  }
}

// docs/protocol.md, "Worked example", byte for byte.
TEST(Report, WorkedExampleOfTheSpec) {
  platform::Catalog c;
  auto t = c.add_family({"t", "", platform::MetricType::gauge, {1, -3}, ""});
  c.add_series(t, {{"i", "0"}});
  c.add_series(t, {{"i", "1"}});
  auto cat = EncodedCatalog::of(c);
  EXPECT_EQ(cat.bytes, (Bytes{1, 1, 1, 't', 0, 0, 1, 5, 0, 2, 0, 1, 1, 'i', 1, '0', 0, 1, 1, 'i',
                              1, '1'}));
  ReportEncoder enc;
  Bytes msg;
  auto ends_with = [&msg](const Bytes& tail) {
    return msg.size() >= tail.size() && std::equal(tail.begin(), tail.end(), msg.end() - tail.size());
  };
  std::vector<Slot> v = {{platform::Value::of_signed(41500), true},
                         {platform::Value::of_signed(-5), true}};
  ReportHeader h = header(1);
  enc.encode(cat, h, {}, v, msg);
  EXPECT_TRUE(ends_with({0, 2, 0, 3, 0xB8, 0x88, 0x05, 0x09, 0}));  // no events, then values
  v[1].value = platform::Value::of_signed(-4);
  h = header(2);
  enc.encode(cat, h, {}, v, msg);
  EXPECT_TRUE(ends_with({0, 2, 0, 2, 2, 0}));
  // The whole of report 2: version, flags (same identity), seq, time, prev, no events, values.
  Bytes want{1, 2, 2};
  Writer(want).uvarint(h.time_ns);
  want.insert(want.end(), 32, 0);
  want.insert(want.end(), {0, 2, 0, 2, 2, 0});
  EXPECT_EQ(msg, want);
}

TEST(Report, EmptyCatalogAndHugeCatalog) {
  std::mt19937_64 rng(7);
  auto empty = EncodedCatalog::of({});
  Stream s(60);
  EXPECT_TRUE(s.roundtrip(empty, {}).values.empty());

  auto huge = EncodedCatalog::of(random_catalog(rng, 500, 100'000));
  auto decoded = decode_catalog(huge.bytes);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(*decoded, huge.catalog);
  Stream t(60);
  std::vector<Slot> values;
  for (int r = 0; r < 3; ++r) {
    evolve(rng, huge.catalog, values);
    expect_same_values(values, t.roundtrip(huge, values).values);
  }
}

TEST(Report, SixtyFourBitExtremesKeepTheirSign) {
  platform::Catalog c;
  auto g = c.add_family({"g", "", platform::MetricType::gauge, {}, ""});
  auto k = c.add_family({"k", "", platform::MetricType::counter, {}, ""});
  for (int i = 0; i < 4; ++i) {
    c.add_series(g, {{"i", std::to_string(i)}});
    c.add_series(k, {{"i", std::to_string(i)}});
  }
  auto cat = EncodedCatalog::of(c);
  using V = platform::Value;
  const std::vector<std::vector<V>> rounds = {
      {V::of_signed(std::numeric_limits<std::int64_t>::min()), V::of_unsigned(~0ull),
       V::of_signed(-1), V::of_unsigned(1ull << 63), V::of_signed(std::numeric_limits<std::int64_t>::max()),
       V::of_unsigned(0), V::of_signed(-41500), V::of_unsigned(18446744073709551000ull)},
      {V::of_unsigned(~0ull), V::of_signed(std::numeric_limits<std::int64_t>::min()),
       V::of_unsigned(~0ull), V::of_signed(-1), V::of_unsigned(0),
       V::of_signed(std::numeric_limits<std::int64_t>::max()), V::of_signed(41500), V::of_unsigned(~0ull)},
  };
  Stream s(60);
  for (const auto& r : rounds) {
    std::vector<Slot> values;
    for (auto v : r) {
      values.push_back({v, true});
    }
    expect_same_values(values, s.roundtrip(cat, values).values);
  }
}

TEST(Report, EventsRoundTrip) {
  auto cat = EncodedCatalog::of({});
  Stream s(60);
  std::vector<Event> events = {
      {EventKind::driver_state, 4, "hwmon", "open /sys/class/hwmon: permission denied",
       {{"from", "up"}, {"state", "down"}}},
      {EventKind::policy, 2, "gpu-allowlist", std::string(1000, 'x'), {}},
  };
  s.roundtrip(cat, {}, events);
}

TEST(Report, KeyframesComeEveryIntervalAndAfterACatalogChange) {
  std::mt19937_64 rng(3);
  auto a = EncodedCatalog::of(random_catalog(rng, 5, 50));
  auto b = EncodedCatalog::of(random_catalog(rng, 5, 60));
  ReportEncoder enc(4);
  std::vector<Slot> va, vb;
  evolve(rng, a.catalog, va);
  evolve(rng, b.catalog, vb);
  std::vector<bool> keyframes;
  Bytes msg;
  for (int i = 0; i < 9; ++i) {
    ReportHeader h = header(i + 1);
    enc.encode(a, h, {}, va, msg);
    keyframes.push_back(h.keyframe);
  }
  EXPECT_EQ(keyframes, (std::vector<bool>{true, false, false, false, true, false, false, false, true}));
  ReportHeader h = header(10);
  enc.encode(b, h, {}, vb, msg);
  EXPECT_TRUE(h.keyframe);
  h = header(11);
  enc.encode(b, h, {}, vb, msg);
  EXPECT_FALSE(h.keyframe);
  enc.force_keyframe();
  h = header(12);
  enc.encode(b, h, {}, vb, msg);
  EXPECT_TRUE(h.keyframe);
}

TEST(Report, DeltaWithoutItsBaseWaitsForTheNextKeyframe) {
  std::mt19937_64 rng(5);
  auto cat = EncodedCatalog::of(random_catalog(rng, 6, 80));
  ReportEncoder enc(3);
  std::vector<Bytes> msgs;
  std::vector<std::vector<Slot>> sent;
  std::vector<Slot> values;
  crypto::Digest prev{};
  for (int i = 0; i < 7; ++i) {
    evolve(rng, cat.catalog, values);
    ReportHeader h = header(i + 1);
    h.prev = prev;
    Bytes msg;
    enc.encode(cat, h, {}, values, msg);
    prev = crypto::sha256(std::span<const std::uint8_t>(msg));
    msgs.push_back(msg);
    sent.push_back(values);
  }
  ReportDecoder dec;
  ASSERT_TRUE(dec.decode(msgs[0], cat));
  // Report 2 lost: 3 cannot be decoded, and the failure leaves the decoder as it was.
  auto r3 = dec.decode(msgs[2], cat);
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error().code, std::errc::resource_unavailable_try_again);
  EXPECT_FALSE(dec.decode(msgs[4], cat));  // still coded against a missing chain
  auto r4 = dec.decode(msgs[3], cat);      // keyframe (interval 3): decodes anywhere
  ASSERT_TRUE(r4) << r4.error().message();
  EXPECT_TRUE(r4->header.keyframe);
  expect_same_values(sent[3], r4->values);
  auto r5 = dec.decode(msgs[4], cat);
  ASSERT_TRUE(r5);
  expect_same_values(sent[4], r5->values);
}

TEST(Report, DeltasLeaveOutTheIdentityTheyShareWithTheirPredecessor) {
  std::mt19937_64 rng(31);
  auto cat = EncodedCatalog::of(random_catalog(rng, 3, 30));
  ReportEncoder enc(100);
  ReportDecoder dec;
  std::vector<Slot> values;
  evolve(rng, cat.catalog, values);
  crypto::Digest prev{};
  std::vector<std::size_t> sizes;
  auto step = [&](ReportHeader h) {
    h.prev = prev;
    Bytes msg;
    enc.encode(cat, h, {}, values, msg);
    auto front = decode_header(msg).value();
    EXPECT_EQ(front.header.same_identity, h.same_identity);
    if (h.same_identity) {
      EXPECT_TRUE(front.header.node_id.empty());  // not in the bytes
    }
    auto rep = dec.decode(msg, cat);
    EXPECT_TRUE(rep) << rep.error().message();
    EXPECT_EQ(rep->header, h);  // filled in from the predecessor
    prev = rep->digest;
    sizes.push_back(msg.size());
    return h;
  };
  EXPECT_FALSE(step(header(1)).same_identity);  // keyframe: everything
  EXPECT_TRUE(step(header(2)).same_identity);
  ReportHeader rebooted = header(3);
  rebooted.boot_id[0] ^= 0xff;
  EXPECT_FALSE(step(rebooted).same_identity);  // a new boot id is written out
  ReportHeader relabelled = header(4);
  relabelled.boot_id = rebooted.boot_id;
  relabelled.node_labels[0].second = "r4";
  EXPECT_FALSE(step(relabelled).same_identity);
  ReportHeader same = relabelled;
  same.seq = 5;
  EXPECT_TRUE(step(same).same_identity);
  EXPECT_LT(sizes[4] + 32 + 16, sizes[3]);  // catalog digest and boot id no longer sent
}

TEST(Report, WrongCatalogIsRefused) {
  std::mt19937_64 rng(9);
  auto a = EncodedCatalog::of(random_catalog(rng, 3, 10));
  auto b = EncodedCatalog::of(random_catalog(rng, 3, 10));
  ReportEncoder enc;
  std::vector<Slot> values;
  evolve(rng, a.catalog, values);
  ReportHeader h = header(1);
  Bytes msg;
  enc.encode(a, h, {}, values, msg);
  ReportDecoder dec;
  EXPECT_FALSE(dec.decode(msg, b));
  EXPECT_TRUE(dec.decode(msg, a));
}

TEST(Report, UnchangedValuesCostOneBit) {
  std::mt19937_64 rng(11);
  platform::Catalog c;
  auto g = c.add_family({"g", "", platform::MetricType::gauge, {}, ""});
  for (int i = 0; i < 800; ++i) {
    c.add_series(g, {{"i", std::to_string(i)}});
  }
  auto cat = EncodedCatalog::of(c);
  std::vector<Slot> values(800);
  for (auto& v : values) {
    v = {platform::Value::of_unsigned(rng() >> 1), true};  // below 2^63: no sign exceptions
  }
  ReportEncoder enc;
  Bytes first, second;
  ReportHeader h = header(1);
  enc.encode(cat, h, {}, values, first);
  h = header(2);
  enc.encode(cat, h, {}, values, second);
  ReportHeader empty_h = header(2);
  Bytes header_only;
  ReportEncoder(1).encode(EncodedCatalog::of({}), empty_h, {}, {}, header_only);
  // 800 unchanged values: a 100-byte bitmap, the count and two small fields.
  EXPECT_LE(second.size() - header_only.size(), 100u + 6u);
  EXPECT_GT(first.size(), 800u * 8u);
}

TEST(Report, SteadyStateEncodingAllocatesNothing) {
  std::mt19937_64 rng(13);
  auto cat = EncodedCatalog::of(random_catalog(rng, 30, 400));
  ReportEncoder enc(1000);
  std::vector<Slot> values;
  Bytes msg;
  std::vector<Event> none;
  for (int i = 0; i < 3; ++i) {  // warm-up: buffers reach their size
    evolve(rng, cat.catalog, values);
    ReportHeader h = header(i + 1);
    enc.encode(cat, h, none, values, msg);
  }
  ReportHeader h = header(4);
  msg.reserve(msg.capacity() * 2);
  gridnode::testing::AllocationCounter counter;
  counter.start();
  for (int i = 0; i < 10; ++i) {
    h.seq = 4 + i;
    enc.encode(cat, h, none, values, msg);
  }
  EXPECT_EQ(counter.stop(), 0u);
}

TEST(Report, HostileBytesGiveErrorsNotCrashes) {
  std::mt19937_64 rng(17);
  auto cat = EncodedCatalog::of(random_catalog(rng, 4, 40));
  ReportEncoder enc;
  std::vector<Slot> values;
  evolve(rng, cat.catalog, values, 0.1, 0.1);
  ReportHeader h = header(1);
  Bytes msg;
  enc.encode(cat, h, {}, values, msg);
  // Every truncation, and every single-byte change, decodes to an error or to some report,
  // never a crash (the sanitizer build checks memory).
  for (std::size_t n = 0; n < msg.size(); ++n) {
    ReportDecoder dec;
    EXPECT_FALSE(dec.decode(std::span(msg).first(n), cat)) << n;
  }
  for (std::size_t i = 0; i < msg.size(); ++i) {
    for (std::uint8_t x : {0x01, 0x80, 0xff}) {
      Bytes bad = msg;
      bad[i] ^= x;
      ReportDecoder dec;
      (void)dec.decode(bad, cat);
      (void)decode_header(bad);
    }
  }
  Bytes garbage(4096);
  for (auto& b : garbage) {
    b = static_cast<std::uint8_t>(rng());
  }
  ReportDecoder dec;
  EXPECT_FALSE(dec.decode(garbage, cat));
}

TEST(Catalog, DigestIsDeterministicAndHostileCatalogsAreRefused) {
  std::mt19937_64 rng(19);
  auto c = random_catalog(rng, 10, 100);
  EXPECT_EQ(EncodedCatalog::of(c).digest, EncodedCatalog::of(c).digest);
  auto d = c;
  d.series[5].labels.emplace_back("zz", "x");
  EXPECT_NE(EncodedCatalog::of(c).digest, EncodedCatalog::of(d).digest);

  auto bad_name = c;
  bad_name.families[0].name = "9bad";
  EXPECT_FALSE(decode_catalog(encode_catalog(bad_name)));
  auto bad_scale = c;
  bad_scale.families[0].scale.exp10 = 19;
  EXPECT_FALSE(decode_catalog(encode_catalog(bad_scale)));
  auto bad_index = c;
  bad_index.series[0].family = 10;
  EXPECT_FALSE(decode_catalog(encode_catalog(bad_index)));
  auto unsorted = c;
  unsorted.series[0].labels = {{"b", "1"}, {"a", "2"}};
  EXPECT_FALSE(decode_catalog(encode_catalog(unsorted)));

  // A count of 2^40 series in a 10-byte input: refused before anything is allocated.
  Bytes lie{kCatalogVersion, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20};
  auto r = decode_catalog(lie);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("cannot fit"), std::string::npos) << r.error().context;
  for (std::size_t n = 0; n < encode_catalog(c).size(); ++n) {
    auto bytes = encode_catalog(c);
    EXPECT_FALSE(decode_catalog(std::span(bytes).first(n)));
  }
}

class Signed : public ::testing::Test {
 protected:
  void SetUp() override {
    random = crypto::Random::create("test").value();
    key.emplace(crypto::PrivateKey::generate(*random).value());
  }
  std::unique_ptr<crypto::Random> random;
  std::optional<crypto::PrivateKey> key;
};

TEST_F(Signed, EverySingleByteFlipIsDetected) {
  std::mt19937_64 rng(23);
  auto cat = EncodedCatalog::of(random_catalog(rng, 4, 60));
  ReportEncoder enc;
  std::vector<Slot> values;
  evolve(rng, cat.catalog, values);
  ReportHeader h = header(1);
  Bytes env;
  enc.encode(cat, h, {}, values, env);
  ASSERT_TRUE(sign_envelope(env, *key, *random));
  const auto pub = key->public_key();
  ASSERT_TRUE(verify_envelope(split_envelope(env).value(), pub));
  for (std::size_t i = 0; i < env.size(); ++i) {
    Bytes bad = env;
    bad[i] ^= static_cast<std::uint8_t>(1u << (i % 8));
    EXPECT_FALSE(verify_envelope(split_envelope(bad).value(), pub)) << "byte " << i;
  }
  // Another node's key does not verify it either.
  auto other = crypto::PrivateKey::generate(*random).value();
  EXPECT_FALSE(verify_envelope(split_envelope(env).value(), other.public_key()));
  EXPECT_FALSE(split_envelope(std::span(env).first(64)));
}

TEST(Chain, DetectsGapReplayReorderDuplicateAndFork) {
  auto d = [](std::uint8_t n) {
    crypto::Digest x{};
    x[0] = n;
    return x;
  };
  auto h = [&](std::uint64_t seq, std::uint8_t prev) {
    ReportHeader r = header(seq);
    r.prev = d(prev);
    return r;
  };
  ChainVerifier c;
  EXPECT_EQ(c.check(h(1, 0), d(1)).link, Link::first);
  EXPECT_EQ(c.check(h(2, 1), d(2)).link, Link::next);
  EXPECT_EQ(c.check(h(2, 1), d(2)).link, Link::duplicate);
  EXPECT_EQ(c.check(h(1, 0), d(1)).link, Link::replay);
  auto gap = c.check(h(5, 4), d(5));  // 3 and 4 lost
  EXPECT_EQ(gap.link, Link::gap);
  EXPECT_EQ(gap.missing_from, 3u);
  EXPECT_EQ(gap.missing_to, 4u);
  EXPECT_EQ(gap.describe(), "reports 3-4 are missing");
  EXPECT_EQ(c.check(h(4, 3), d(4)).link, Link::replay);  // 4 arrives late: out of order
  EXPECT_EQ(c.check(h(6, 9), d(6)).link, Link::fork);    // 6 does not follow 5
  EXPECT_EQ(c.last_seq(), 5u);
  EXPECT_EQ(c.check(h(6, 5), d(6)).link, Link::next);

  ChainVerifier resumed(6, d(6));
  EXPECT_EQ(resumed.check(h(7, 6), d(7)).link, Link::next);
}

TEST_F(Signed, AlteredReportBreaksTheChainEvenWhenResigned) {
  // Someone with a key swaps report 2's values: report 3's prev no longer matches.
  std::mt19937_64 rng(29);
  auto cat = EncodedCatalog::of(random_catalog(rng, 3, 20));
  ReportEncoder enc(1);
  std::vector<Slot> values;
  evolve(rng, cat.catalog, values);
  ChainVerifier chain;
  crypto::Digest prev{};
  std::vector<crypto::Digest> digests;
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    ReportHeader h = header(seq);
    h.prev = prev;
    Bytes msg;
    enc.encode(cat, h, {}, values, msg);
    prev = crypto::sha256(std::span<const std::uint8_t>(msg));
    digests.push_back(prev);
  }
  ReportHeader h2 = header(2);
  h2.prev = digests[0];
  ReportHeader h3 = header(3);
  h3.prev = digests[1];
  EXPECT_EQ(chain.check(header(1), digests[0]).link, Link::first);
  crypto::Digest forged = digests[1];
  forged[31] ^= 1;
  EXPECT_EQ(chain.check(h2, forged).link, Link::next);  // alone, report 2 looks fine
  EXPECT_EQ(chain.check(h3, digests[2]).link, Link::fork);  // its successor exposes it
}

}  // namespace
}  // namespace gridnode::protocol
