#include "gridnode/protocol/wire.hpp"

#include <limits>

#include <gtest/gtest.h>

#include "gridnode/protocol/frame.hpp"

namespace gridnode::protocol {
namespace {

TEST(Wire, VarintsRoundTripAtTheExtremes) {
  const std::uint64_t us[] = {0, 1, 127, 128, 16383, 16384, (1ull << 63) - 1, 1ull << 63,
                              std::numeric_limits<std::uint64_t>::max()};
  const std::int64_t ss[] = {0, -1, 1, -64, 64, std::numeric_limits<std::int64_t>::min(),
                             std::numeric_limits<std::int64_t>::max()};
  Bytes b;
  Writer w(b);
  for (auto u : us) {
    w.uvarint(u);
  }
  for (auto s : ss) {
    w.svarint(s);
  }
  Reader r(b);
  for (auto u : us) {
    EXPECT_EQ(r.uvarint().value(), u);
  }
  for (auto s : ss) {
    EXPECT_EQ(r.svarint().value(), s);
  }
  EXPECT_TRUE(r.at_end());
}

TEST(Wire, VarintSizes) {
  Bytes b;
  Writer w(b);
  w.uvarint(127);
  EXPECT_EQ(b.size(), 1u);
  w.uvarint(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(b.size(), 11u);  // 10 bytes: the most a varint may take
  b.clear();
  w.svarint(-1);
  EXPECT_EQ(b, (Bytes{0x01}));
}

TEST(Wire, RejectsNonCanonicalOverlongAndTruncatedVarints) {
  EXPECT_FALSE(Reader(Bytes{0x80, 0x00}).uvarint());  // 0 written in two bytes
  EXPECT_FALSE(Reader(Bytes{0x80}).uvarint());        // cut short
  EXPECT_FALSE(Reader(Bytes{}).uvarint());
  Bytes too_big(9, 0xff);
  too_big.push_back(0x02);  // bit 64 set
  EXPECT_FALSE(Reader(too_big).uvarint());
  Bytes eleven(10, 0x80);
  eleven.push_back(0x01);
  EXPECT_FALSE(Reader(eleven).uvarint());
  Bytes max(9, 0xff);
  max.push_back(0x01);
  EXPECT_EQ(Reader(max).uvarint().value(), std::numeric_limits<std::uint64_t>::max());
}

TEST(Wire, StringsAreBoundedByTheLimitAndByWhatIsThere) {
  Bytes b;
  Writer w(b);
  w.string("hello");
  EXPECT_EQ(Reader(b).string(5).value(), "hello");
  EXPECT_FALSE(Reader(b).string(4));
  Bytes lie{0xff, 0xff, 0x03, 'a'};  // claims 65535 bytes, has 1
  auto r = Reader(lie).string(1 << 20);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("truncated"), std::string::npos) << r.error().context;
}

TEST(Wire, ErrorsNameTheByteOffset) {
  Bytes b{0x01, 0x80};
  Reader r(b);
  ASSERT_TRUE(r.u8());
  auto v = r.uvarint();
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().context.find("at byte 1"), std::string::npos) << v.error().context;
}

TEST(Frames, RoundTripAndLimits) {
  Bytes file;
  Bytes a{1, 2, 3};
  Bytes empty;
  append_frame(file, FrameKind::catalog, a);
  append_frame(file, FrameKind::report, empty);
  FrameReader fr(file);
  auto f1 = fr.next().value();
  ASSERT_TRUE(f1);
  EXPECT_EQ(f1->kind, FrameKind::catalog);
  EXPECT_EQ(Bytes(f1->payload.begin(), f1->payload.end()), a);
  auto f2 = fr.next().value();
  ASSERT_TRUE(f2);
  EXPECT_EQ(f2->kind, FrameKind::report);
  EXPECT_TRUE(f2->payload.empty());
  EXPECT_FALSE(fr.next().value());

  EXPECT_FALSE(FrameReader(Bytes{9, 0}).next());              // unknown kind
  EXPECT_FALSE(FrameReader(Bytes{2, 5, 1, 2}).next());        // cut short
  Bytes huge;
  Writer w(huge);
  w.u8(2);
  w.uvarint(kMaxReportFrame + 1);
  EXPECT_FALSE(FrameReader(huge).next());                     // over the limit
}

TEST(Frames, ReportFileMagic) {
  Bytes f(kReportFileMagic.begin(), kReportFileMagic.end());
  f.push_back(7);
  EXPECT_EQ(report_file_body(f).value().size(), 1u);
  EXPECT_FALSE(report_file_body(Bytes{'G', 'N'}));
  f[0] = 'X';
  EXPECT_FALSE(report_file_body(f));
}

}  // namespace
}  // namespace gridnode::protocol

#include "gridnode/protocol/gap.hpp"

namespace gridnode::protocol {
namespace {

TEST(Gap, RoundTripAndValidation) {
  GapRecord g{"node-7", 12, 40, 1'764'000'000'000'000'000ull, "spool full (64 MiB)"};
  Bytes b;
  encode_gap(g, b);
  EXPECT_EQ(decode_gap(b).value(), g);
  for (std::size_t n = 0; n < b.size(); ++n) {
    EXPECT_FALSE(decode_gap(std::span(b).first(n)));
  }
  GapRecord backwards = g;
  backwards.to_seq = 11;
  encode_gap(backwards, b);
  EXPECT_FALSE(decode_gap(b));
  b.push_back(0);
  EXPECT_FALSE(decode_gap(b));
}

}  // namespace
}  // namespace gridnode::protocol

#include "gridnode/protocol/session.hpp"

namespace gridnode::protocol {
namespace {

TEST(Session, MessagesRoundTripAndRefuseGarbage) {
  Bytes b;
  Hello h{"node-7", 12, 40};
  encode(h, b);
  EXPECT_EQ(decode_hello(b).value(), h);
  Welcome w{11, {1, 2, 3}, 64};
  encode(w, b);
  EXPECT_EQ(decode_welcome(b).value(), w);
  encode(Ack{99}, b);
  EXPECT_EQ(decode_ack(b).value().seq, 99u);
  Reject r{7, "signature of report 8 does not verify"};
  encode(r, b);
  EXPECT_EQ(decode_reject(b).value(), r);
  for (std::size_t n = 0; n < b.size(); ++n) {
    EXPECT_FALSE(decode_reject(std::span(b).first(n)));
  }
  encode(Hello{"bad id!", 1, 2}, b);
  EXPECT_FALSE(decode_hello(b));
  encode(Welcome{1, {}, 0}, b);
  EXPECT_FALSE(decode_welcome(b));
}

}  // namespace
}  // namespace gridnode::protocol
