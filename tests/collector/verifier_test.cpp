// The collector's OpenSSL verification (collector/include/gridnode/collector/verifier.hpp) against mbedTLS's
// PublicKey::verify on the same inputs: valid, tampered, foreign and malformed signatures must
// get the same answer, and a refused one must leave nothing on OpenSSL's error queue.

#include "gridnode/collector/verifier.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <algorithm>
#include <utility>

namespace gridnode::collector {
namespace {

using crypto::Digest;
using crypto::PrivateKey;
using crypto::PublicKey;
using crypto::Random;
using crypto::Signature;

// {OpenSSL, mbedTLS}
std::pair<bool, bool> both(const ReportVerifier& v, const Digest& d, const Signature& sig) {
  return {v.verify(d, sig), v.key().verify(d, sig)};
}

// r (or s) set to the group order n plus `delta`.
Signature at_order(Signature sig, bool r_side, int delta) {
  static const std::uint8_t kN[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                      0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
  std::uint8_t* p = sig.data() + (r_side ? 0 : 32);
  std::copy(kN, kN + 32, p);
  p[31] = static_cast<std::uint8_t>(p[31] + delta);
  return sig;
}

TEST(ReportVerifier, AgreesWithMbedtls) {
  auto random = Random::create("verifier_test").value();
  for (int k = 0; k < 3; ++k) {
    PrivateKey key = PrivateKey::generate(*random).value();
    ReportVerifier v(key.public_key());
    ASSERT_TRUE(v.uses_openssl());
    ReportVerifier other(PrivateKey::generate(*random).value().public_key());
    for (int i = 0; i < 8; ++i) {
      Digest d;
      ASSERT_TRUE(random->fill(d));
      Signature sig = key.sign(d, *random).value();
      EXPECT_EQ(both(v, d, sig), std::make_pair(true, true));
      EXPECT_EQ(both(other, d, sig), std::make_pair(false, false));
      Digest d2 = d;
      d2[i * 3] ^= 0x01;
      EXPECT_EQ(both(v, d2, sig), std::make_pair(false, false));
      Signature s2 = sig;
      s2[i * 7] ^= 0x80;
      EXPECT_EQ(both(v, d, s2), std::make_pair(false, false));
      Signature junk;
      ASSERT_TRUE(random->fill(junk));
      EXPECT_EQ(both(v, d, junk), std::make_pair(false, false));
      for (bool r_side : {true, false}) {
        for (int delta : {-1, 0, 1}) {
          EXPECT_EQ(both(v, d, at_order(sig, r_side, delta)), std::make_pair(false, false));
        }
        Signature zero = sig;
        std::fill_n(zero.data() + (r_side ? 0 : 32), 32, 0);
        EXPECT_EQ(both(v, d, zero), std::make_pair(false, false));
      }
    }
  }
  EXPECT_EQ(ERR_peek_error(), 0u) << "a refused signature left an error on the queue";
}

// Leading zero octets in r or s shorten the DER integers (and a set top bit lengthens them):
// every encoding length the conversion can give must verify.
TEST(ReportVerifier, ShortAndLongIntegers) {
  auto random = Random::create("verifier_test").value();
  PrivateKey key = PrivateKey::generate(*random).value();
  ReportVerifier v(key.public_key());
  bool short_r = false, long_r = false;
  for (int i = 0; i < 2000 && !(short_r && long_r); ++i) {
    Digest d;
    ASSERT_TRUE(random->fill(d));
    Signature sig = key.sign(d, *random).value();
    short_r |= sig[0] == 0;
    long_r |= (sig[0] & 0x80) != 0;
    ASSERT_TRUE(v.verify(d, sig)) << "signature " << i;
  }
  EXPECT_TRUE(short_r && long_r);
}

TEST(ReportVerifier, MovesKeepTheKey) {
  auto random = Random::create("verifier_test").value();
  PrivateKey key = PrivateKey::generate(*random).value();
  Digest d{};
  Signature sig = key.sign(d, *random).value();
  ReportVerifier a(key.public_key());
  ReportVerifier b(std::move(a));
  EXPECT_TRUE(b.verify(d, sig));
  ReportVerifier c(PrivateKey::generate(*random).value().public_key());
  EXPECT_FALSE(c.verify(d, sig));
  c = std::move(b);
  EXPECT_TRUE(c.verify(d, sig));
}

}  // namespace
}  // namespace gridnode::collector
