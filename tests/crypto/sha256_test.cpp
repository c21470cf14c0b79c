#include "gridnode/crypto/sha256.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <random>
#include <string>
#include <vector>

#include "gridnode/crypto/error.hpp"

namespace gridnode::crypto {
namespace {

// FIPS 180-2 appendix B vectors.
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(to_hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(to_hex(sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, SpanAndStringViewAgree) {
  const std::vector<std::uint8_t> bytes = {'a', 'b', 'c'};
  EXPECT_EQ(sha256(bytes), sha256("abc"));
  EXPECT_EQ(sha256(std::span<const std::uint8_t>()), sha256(std::string_view()));
}

TEST(Sha256, IncrementalEqualsOneShot) {
  std::mt19937 rng(42);
  std::vector<std::uint8_t> data(5000);
  for (auto& b : data) {
    b = static_cast<std::uint8_t>(rng());
  }
  Sha256 h;
  // Chunk sizes 0..130 cross the 64-byte block boundary in every way.
  for (std::size_t pos = 0; pos < data.size();) {
    std::size_t n = std::min<std::size_t>(rng() % 131, data.size() - pos);
    h.update(std::span<const std::uint8_t>(data).subspan(pos, n));
    pos += n;
  }
  EXPECT_EQ(h.finish(), sha256(data));

  // finish() restarts: the same object hashes the next message from scratch.
  h.update("a");
  h.update(std::string_view("bc"));
  EXPECT_EQ(to_hex(h.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(h.finish(), sha256(""));

  h.update("garbage");
  h.reset();
  h.update("abc");
  EXPECT_EQ(h.finish(), sha256("abc"));
}

TEST(Sha256, MoveCarriesStateAndRestartsSource) {
  Sha256 a;
  a.update("ab");
  Sha256 b(std::move(a));
  b.update("c");
  EXPECT_EQ(b.finish(), sha256("abc"));
  a.update("abc");  // NOLINT(bugprone-use-after-move): documented to start afresh
  EXPECT_EQ(a.finish(), sha256("abc"));
  Sha256 c;
  c.update("xyz");
  b.update("a");
  c = std::move(b);
  c.update("bc");
  EXPECT_EQ(c.finish(), sha256("abc"));
}

TEST(Hex, RoundTripAndRefusals) {
  Digest d = sha256("abc");
  std::string hex = to_hex(d);
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(digest_from_hex(hex).value(), d);
  std::string upper = hex;
  for (char& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  EXPECT_EQ(digest_from_hex(upper).value(), d);
  EXPECT_EQ(to_hex(std::vector<std::uint8_t>{0x00, 0x0f, 0xf0, 0xff}), "000ff0ff");
  EXPECT_EQ(to_hex({}), "");

  EXPECT_EQ(digest_from_hex("").error().code, std::errc::invalid_argument);
  EXPECT_EQ(digest_from_hex(hex.substr(1)).error().code, std::errc::invalid_argument);
  EXPECT_EQ(digest_from_hex(hex + "0").error().code, std::errc::invalid_argument);
  std::string bad = hex;
  bad[63] = 'g';
  auto r = digest_from_hex(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("offset 63"), std::string::npos) << r.error().context;
  bad = hex;
  bad[10] = ' ';
  EXPECT_FALSE(digest_from_hex(bad));
}

TEST(MbedtlsCategory, NamesCodesLikeMbedtls) {
  EXPECT_STREQ(mbedtls_category().name(), "mbedtls");
  platform::Error e = mbedtls_error(-0x4E00, "verify");
  EXPECT_EQ(e.code.category(), mbedtls_category());
  EXPECT_EQ(e.code.value(), -0x4E00);
  EXPECT_EQ(e.code.message(), "ECP - The signature is not valid (-0x4E00)");
  EXPECT_EQ(e.message(), "verify: ECP - The signature is not valid (-0x4E00)");
  // A high-level code plus a low-level one, as mbedTLS composes them (MBEDTLS_ERROR_ADD).
  std::string composed = mbedtls_category().message(-0x3D00 - 0x0062);
  EXPECT_NE(composed.find("PK - "), std::string::npos) << composed;
  EXPECT_NE(composed.find("(-0x3D62)"), std::string::npos) << composed;
}

}  // namespace
}  // namespace gridnode::crypto
