// White-box check of crypto/src/ecdsa_verify.cpp (PublicKey::verify's fast path) against
// mbedtls_ecdsa_verify on the same inputs: valid, tampered and malformed signatures must get
// the same answer from both. Includes the private header on purpose.

#include <gtest/gtest.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>

#include <vector>

#include "../../crypto/src/internal.hpp"
#include "gridnode/crypto/crypto.hpp"

namespace gridnode::crypto {
namespace {

struct Mpi {
  Mpi() { mbedtls_mpi_init(&m); }
  ~Mpi() { mbedtls_mpi_free(&m); }
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;
  mbedtls_mpi m;
};

// {fast path, mbedtls_ecdsa_verify} for digest and raw r||s.
std::pair<bool, bool> both(const PublicKey& key, const Digest& d, const Signature& sig) {
  const PublicKey::Impl& impl = KeyAccess::impl(key);
  mbedtls_ecp_keypair* kp = mbedtls_pk_ec(impl.pk);
  Mpi r, s;
  EXPECT_EQ(mbedtls_mpi_read_binary(&r.m, sig.data(), 32), 0);
  EXPECT_EQ(mbedtls_mpi_read_binary(&s.m, sig.data() + 32, 32), 0);
  bool fast = ecdsa_verify_with_tables(kp->grp, impl.q_table, d.data(), r.m, s.m) == 0;
  bool reference = mbedtls_ecdsa_verify(&kp->grp, d.data(), d.size(), &kp->Q, &r.m, &s.m) == 0;
  EXPECT_EQ(fast, key.verify(d, sig));
  return {fast, reference};
}

Signature with_order(const Signature& sig, bool r_side, int delta) {
  // n of P-256, big-endian.
  static const std::uint8_t kN[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                      0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
  Signature out = sig;
  std::uint8_t* p = out.data() + (r_side ? 0 : 32);
  std::copy(kN, kN + 32, p);
  p[31] = static_cast<std::uint8_t>(p[31] + delta);  // no carry: 0x51 + [-1, 1]
  return out;
}

TEST(EcdsaVerifyWithTables, AgreesWithMbedtls) {
  auto random = Random::create("ecdsa_verify_test").value();
  for (int k = 0; k < 4; ++k) {
    PrivateKey key = PrivateKey::generate(*random).value();
    PublicKey pub = key.public_key();
    ASSERT_TRUE(KeyAccess::impl(pub).q_table.ready()) << "the fast path is not in use";
    PublicKey other = PrivateKey::generate(*random).value().public_key();
    for (int i = 0; i < 12; ++i) {
      Digest d;
      ASSERT_TRUE(random->fill(d));
      Signature sig = key.sign(d, *random).value();
      EXPECT_EQ(both(pub, d, sig), std::make_pair(true, true));
      EXPECT_EQ(both(other, d, sig), std::make_pair(false, false));
      Digest d2 = d;
      d2[i % 32] ^= 0x10;
      EXPECT_EQ(both(pub, d2, sig), std::make_pair(false, false));
      Signature s2 = sig;
      s2[(i * 5) % 64] ^= 0x01;
      EXPECT_EQ(both(pub, d, s2), std::make_pair(false, false));
      Signature junk;
      ASSERT_TRUE(random->fill(junk));
      EXPECT_EQ(both(pub, d, junk), std::make_pair(false, false));
      // r or s at the edges of [1, n-1] and just outside.
      for (bool r_side : {true, false}) {
        for (int delta : {-1, 0, 1}) {
          auto [fast, reference] = both(pub, d, with_order(sig, r_side, delta));
          EXPECT_EQ(fast, reference);
          EXPECT_FALSE(fast);
        }
      }
    }
    // e = 0 and e = n (u1 = 0): signatures of these digests are still checked correctly.
    Digest zero{};
    Signature zsig = key.sign(zero, *random).value();
    EXPECT_EQ(both(pub, zero, zsig), std::make_pair(true, true));
    Signature n_as_digest = with_order(Signature{}, true, 0);
    Digest n;
    std::copy(n_as_digest.begin(), n_as_digest.begin() + 32, n.begin());
    Signature nsig = key.sign(n, *random).value();
    EXPECT_EQ(both(pub, n, nsig), std::make_pair(true, true));
    EXPECT_EQ(both(pub, zero, nsig), std::make_pair(true, true));  // e ≡ 0 either way
    Signature one{};
    one[31] = 1;
    one[63] = 1;
    EXPECT_EQ(both(pub, zero, one), std::make_pair(false, false));
  }
}

// u1·G == ±u2·Q: the final addition must double (A == B) or give the point at infinity
// (A == -B). Built from the private scalar d: choose k, r = x(k·G), then the digest e = r·d
// makes u1·G equal u2·Q, and s = k^-1·(e + r·d) makes the signature valid.
TEST(EcdsaVerifyWithTables, EqualAndOppositeProducts) {
  auto random = Random::create("ecdsa_verify_test").value();
  PrivateKey key = PrivateKey::generate(*random).value();
  PublicKey pub = key.public_key();
  const mbedtls_ecp_keypair* kp = mbedtls_pk_ec(*KeyAccess::pk(key));
  mbedtls_ecp_group* grp = const_cast<mbedtls_ecp_group*>(&kp->grp);
  Mpi k, r, e, t, s, kinv, neg_e;
  mbedtls_ecp_point big_r;
  mbedtls_ecp_point_init(&big_r);
  ASSERT_EQ(mbedtls_mpi_lset(&k.m, 0x1234567), 0);
  ASSERT_EQ(mbedtls_ecp_mul(grp, &big_r, &k.m, &grp->G, nullptr, nullptr), 0);
  ASSERT_EQ(mbedtls_mpi_mod_mpi(&r.m, &big_r.X, &grp->N), 0);
  ASSERT_EQ(mbedtls_mpi_mul_mpi(&t.m, &r.m, &kp->d), 0);
  ASSERT_EQ(mbedtls_mpi_mod_mpi(&e.m, &t.m, &grp->N), 0);  // e = r·d
  ASSERT_EQ(mbedtls_mpi_add_mpi(&t.m, &e.m, &e.m), 0);     // e + r·d = 2e
  ASSERT_EQ(mbedtls_mpi_inv_mod(&kinv.m, &k.m, &grp->N), 0);
  ASSERT_EQ(mbedtls_mpi_mul_mpi(&t.m, &t.m, &kinv.m), 0);
  ASSERT_EQ(mbedtls_mpi_mod_mpi(&s.m, &t.m, &grp->N), 0);
  mbedtls_ecp_point_free(&big_r);
  Digest d;
  Signature sig;
  ASSERT_EQ(mbedtls_mpi_write_binary(&e.m, d.data(), 32), 0);
  ASSERT_EQ(mbedtls_mpi_write_binary(&r.m, sig.data(), 32), 0);
  ASSERT_EQ(mbedtls_mpi_write_binary(&s.m, sig.data() + 32, 32), 0);
  EXPECT_EQ(both(pub, d, sig), std::make_pair(true, true));
  // e = -r·d: u1·G + u2·Q is the point at infinity, whatever s.
  ASSERT_EQ(mbedtls_mpi_sub_mpi(&neg_e.m, &grp->N, &e.m), 0);
  ASSERT_EQ(mbedtls_mpi_write_binary(&neg_e.m, d.data(), 32), 0);
  EXPECT_EQ(both(pub, d, sig), std::make_pair(false, false));
}

}  // namespace
}  // namespace gridnode::crypto
