#include "gridnode/crypto/keys.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crypto_test_util.hpp"
#include "gridnode/crypto/error.hpp"
#include "gridnode/crypto/random.hpp"
#include "temp_dir.hpp"

namespace gridnode::crypto {
namespace {

using test::openssl;
using test::shell_quote;
using testing::TempDir;

class Keys : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = Random::create("keys_test");
    ASSERT_TRUE(r) << r.error().message();
    random_ = std::move(*r);
  }
  PrivateKey generate() {
    auto k = PrivateKey::generate(*random_);
    EXPECT_TRUE(k) << k.error().message();
    return *k;
  }
  std::unique_ptr<Random> random_;
};

TEST_F(Keys, RandomFillsAnyLength) {
  std::vector<std::uint8_t> none;
  EXPECT_TRUE(random_->fill(none));
  // More than MBEDTLS_CTR_DRBG_MAX_REQUEST (1024) in one call.
  std::vector<std::uint8_t> a(5000), b(5000);
  ASSERT_TRUE(random_->fill(a));
  ASSERT_TRUE(random_->fill(b));
  EXPECT_NE(a, b);
  std::set<std::uint8_t> seen(a.begin(), a.end());
  EXPECT_GT(seen.size(), 200u);  // 5000 random bytes hit nearly all 256 values
  EXPECT_NE(std::vector<std::uint8_t>(a.end() - 100, a.end()), std::vector<std::uint8_t>(100, 0));
}

TEST_F(Keys, SignVerifyRoundTrip) {
  PrivateKey key = generate();
  PublicKey pub = key.public_key();
  for (int i = 0; i < 20; ++i) {
    Digest d = sha256("report " + std::to_string(i));
    auto sig = key.sign(d, *random_);
    ASSERT_TRUE(sig) << sig.error().message();
    EXPECT_TRUE(pub.verify(d, *sig));
  }
}

TEST_F(Keys, TamperedDigestOrSignatureFails) {
  PrivateKey key = generate();
  PublicKey pub = key.public_key();
  Digest d = sha256("the report");
  Signature sig = key.sign(d, *random_).value();
  ASSERT_TRUE(pub.verify(d, sig));
  for (std::size_t bit : {0u, 7u, 100u, 255u}) {
    Digest bad = d;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(pub.verify(bad, sig)) << "digest bit " << bit;
  }
  for (std::size_t bit : {0u, 255u, 256u, 300u, 511u}) {
    Signature bad = sig;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(pub.verify(d, bad)) << "signature bit " << bit;
  }
  // Malformed: r or s zero, or >= n.
  Signature zero{};
  EXPECT_FALSE(pub.verify(d, zero));
  Signature r_zero = sig;
  std::fill(r_zero.begin(), r_zero.begin() + 32, 0);
  EXPECT_FALSE(pub.verify(d, r_zero));
  Signature ff;
  ff.fill(0xff);
  EXPECT_FALSE(pub.verify(d, ff));
  // Another key's signature.
  EXPECT_FALSE(generate().public_key().verify(d, sig));
}

TEST_F(Keys, SignaturesAreDeterministic) {
  PrivateKey key = generate();
  Digest d = sha256("same digest");
  auto a = key.sign(d, *random_).value();
  auto b = key.sign(d, *random_).value();
  EXPECT_EQ(a, b);
  auto other = key.sign(sha256("other digest"), *random_).value();
  EXPECT_NE(a, other);
  // A fresh Random (different blinding) gives the same signature too.
  auto random2 = Random::create("other").value();
  EXPECT_EQ(key.sign(d, *random2).value(), a);
  EXPECT_NE(generate().sign(d, *random_).value(), a);
}

TEST_F(Keys, CopiesShareTheKeyAndVerifyOnManyThreads) {
  PrivateKey key = generate();
  PrivateKey copy = key;
  Digest d = sha256("x");
  EXPECT_EQ(copy.sign(d, *random_).value(), key.sign(d, *random_).value());
  PublicKey pub = key.public_key();
  Signature sig = key.sign(d, *random_).value();
  // verify() on one shared key from several threads (run under TSan/ASan in CI).
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      PublicKey mine = pub;
      for (int i = 0; i < 10; ++i) {
        if (mine.verify(d, sig) && pub.verify(d, sig)) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 40);
}

TEST_F(Keys, PrivateKeyPemRoundTrip) {
  PrivateKey key = generate();
  std::string pem = key.to_pem().value();
  EXPECT_EQ(pem.rfind("-----BEGIN EC PRIVATE KEY-----\n", 0), 0u) << pem;
  EXPECT_NE(pem.find("-----END EC PRIVATE KEY-----"), std::string::npos);
  PrivateKey back = PrivateKey::from_pem(pem).value();
  EXPECT_EQ(back.public_key(), key.public_key());
  // Same secret scalar: deterministic signatures agree.
  Digest d = sha256("round trip");
  EXPECT_EQ(back.sign(d, *random_).value(), key.sign(d, *random_).value());
  EXPECT_EQ(back.to_pem().value(), pem);
  // Text around the block is ignored.
  EXPECT_TRUE(PrivateKey::from_pem("# node key\n" + pem + "\ntrailer\n"));
}

TEST_F(Keys, PublicKeyPemAndDerRoundTrip) {
  PublicKey pub = generate().public_key();
  std::string pem = pub.to_pem().value();
  EXPECT_EQ(pem.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u) << pem;
  PublicKey from_pem = PublicKey::from_pem(pem).value();
  EXPECT_EQ(from_pem, pub);
  Bytes der = pub.to_der().value();
  EXPECT_EQ(der.size(), 91u);  // SPKI with a 65-byte uncompressed P-256 point
  EXPECT_EQ(from_pem.to_der().value(), der);
  PublicKey from_der = PublicKey::from_der(der).value();
  EXPECT_EQ(from_der, pub);
  EXPECT_FALSE(from_der == generate().public_key());
  EXPECT_TRUE(from_der != generate().public_key());

  Bytes trailing = der;
  trailing.push_back(0);
  auto r = PublicKey::from_der(trailing);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("after"), std::string::npos) << r.error().message();
  EXPECT_FALSE(PublicKey::from_der(Bytes(der.begin(), der.end() - 1)));
  EXPECT_FALSE(PublicKey::from_der({}));
  Bytes bad_point = der;
  bad_point.back() ^= 1;  // y no longer on the curve
  EXPECT_FALSE(PublicKey::from_der(bad_point));
}

TEST_F(Keys, GarbageIsAnErrorNotACrash) {
  std::string pem = generate().to_pem().value();
  std::string pub_pem = generate().public_key().to_pem().value();
  for (std::string_view text :
       {std::string_view(""), std::string_view("hello"), std::string_view("-----BEGIN"),
        std::string_view("-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n"),
        std::string_view(pem).substr(0, pem.size() / 2),
        std::string_view(pem).substr(0, pem.size() - 20), std::string_view(pub_pem),
        std::string_view("\0\0\0", 3)}) {
    auto r = PrivateKey::from_pem(text);
    EXPECT_FALSE(r) << text;
    if (!r) {
      EXPECT_FALSE(r.error().context.empty());
    }
  }
  // Corrupt base64 in the middle.
  std::string corrupt = pem;
  corrupt[40] = '*';
  EXPECT_FALSE(PrivateKey::from_pem(corrupt));
  for (std::string_view text : {std::string_view(""), std::string_view("junk"),
                                std::string_view(pub_pem).substr(0, 60), std::string_view(pem)}) {
    EXPECT_FALSE(PublicKey::from_pem(text)) << text;
  }
}

TEST_F(Keys, MismatchedPublicPointIsRefused) {
  // A SEC1 key whose stored public point belongs to another key: mbedTLS parses it happily,
  // and every signature would fail to verify.
  std::vector<std::uint8_t> der = test::pem_body(generate().to_pem().value());
  Bytes other = generate().public_key().to_der().value();
  ASSERT_GE(der.size(), 65u);
  std::copy(other.end() - 65, other.end(), der.end() - 65);
  auto r = PrivateKey::from_pem(test::to_pem("EC PRIVATE KEY", der));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("does not belong"), std::string::npos) << r.error().message();
}

TEST_F(Keys, ForeignKeysFromOpensslAreRefusedClearly) {
  GRIDNODE_REQUIRE_OPENSSL();
  TempDir dir;
  const std::string rsa = dir / "rsa.pem", p384 = dir / "p384.pem", p256 = dir / "p256.pem",
                    pkcs8 = dir / "pkcs8.pem", enc = dir / "enc.pem", ed = dir / "ed.pem";
  openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out " + shell_quote(rsa));
  openssl("ecparam -name secp384r1 -genkey -noout -out " + shell_quote(p384));
  openssl("ecparam -name prime256v1 -genkey -noout -out " + shell_quote(p256));
  openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + shell_quote(pkcs8));
  openssl("ec -in " + shell_quote(p256) + " -aes256 -passout pass:secret -out " + shell_quote(enc));
  openssl("genpkey -algorithm ed25519 -out " + shell_quote(ed));

  auto r = PrivateKey::from_pem(test::read_text(rsa));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::invalid_argument);
  EXPECT_NE(r.error().context.find("RSA"), std::string::npos) << r.error().message();

  r = PrivateKey::from_pem(test::read_text(p384));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::invalid_argument);
  EXPECT_NE(r.error().context.find("secp384r1"), std::string::npos) << r.error().message();

  r = PrivateKey::from_pem(test::read_text(enc));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("encrypted"), std::string::npos) << r.error().message();

  EXPECT_FALSE(PrivateKey::from_pem(test::read_text(ed)));

  // openssl's own P-256 keys, SEC1 and PKCS#8, load, and their public halves match openssl's.
  for (const std::string& path : {p256, pkcs8}) {
    auto key = PrivateKey::from_pem(test::read_text(path));
    ASSERT_TRUE(key) << path << ": " << key.error().message();
    std::string pub_pem = openssl("pkey -in " + shell_quote(path) + " -pubout");
    EXPECT_EQ(PublicKey::from_pem(pub_pem).value(), key->public_key());
    EXPECT_EQ(key->public_key().to_pem().value(), pub_pem);
  }

  // Public halves of the foreign keys.
  auto pr = PublicKey::from_pem(openssl("pkey -in " + shell_quote(rsa) + " -pubout"));
  ASSERT_FALSE(pr);
  EXPECT_NE(pr.error().context.find("RSA"), std::string::npos) << pr.error().message();
  pr = PublicKey::from_pem(openssl("pkey -in " + shell_quote(p384) + " -pubout"));
  ASSERT_FALSE(pr);
  EXPECT_NE(pr.error().context.find("secp384r1"), std::string::npos) << pr.error().message();
}

// ---- DER signatures ----

Signature make_sig(std::uint8_t r_first, std::uint8_t s_first) {
  Signature sig;
  for (std::size_t i = 0; i < 64; ++i) {
    sig[i] = static_cast<std::uint8_t>(i + 1);
  }
  sig[0] = r_first;
  sig[32] = s_first;
  return sig;
}

TEST(SignatureDer, MinimalEncoding) {
  // Top bit clear: 32-byte INTEGERs, no padding.
  Bytes der = signature_to_der(make_sig(0x01, 0x7f)).value();
  ASSERT_EQ(der.size(), 70u);
  EXPECT_EQ(der[0], 0x30);
  EXPECT_EQ(der[1], 68);
  EXPECT_EQ(der[2], 0x02);
  EXPECT_EQ(der[3], 32);
  EXPECT_EQ(der[4], 0x01);
  EXPECT_EQ(der[36], 0x02);
  EXPECT_EQ(der[37], 32);
  // Top bit set: a 0x00 octet keeps the INTEGER positive.
  der = signature_to_der(make_sig(0x80, 0xff)).value();
  ASSERT_EQ(der.size(), 72u);
  EXPECT_EQ(der[1], 70);
  EXPECT_EQ(der[3], 33);
  EXPECT_EQ(der[4], 0x00);
  EXPECT_EQ(der[5], 0x80);
  // Leading zero octets are dropped; zero is one 0x00 octet.
  Signature small{};
  small[31] = 5;
  der = signature_to_der(small).value();
  EXPECT_EQ(der, (Bytes{0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x00}));
  EXPECT_EQ(signature_from_der(der).value(), small);
}

TEST(SignatureDer, RoundTripsRandomSignatures) {
  auto random = Random::create().value();
  for (int i = 0; i < 500; ++i) {
    Signature sig;
    ASSERT_TRUE(random->fill(sig));
    // Leading zero bytes now and then, as real r and s have with probability 1/256.
    if (i % 5 == 0) {
      std::fill(sig.begin(), sig.begin() + (i % 7), 0);
    }
    if (i % 3 == 0) {
      std::fill(sig.begin() + 32, sig.begin() + 32 + (i % 11), 0);
    }
    Bytes der = signature_to_der(sig).value();
    EXPECT_LE(der.size(), 72u);
    EXPECT_EQ(signature_from_der(der).value(), sig);
  }
}

TEST(SignatureDer, RejectsMalformed) {
  const Bytes good = signature_to_der(make_sig(0x01, 0x02)).value();
  auto refused = [](const Bytes& der, std::string_view why) {
    auto r = signature_from_der(der);
    EXPECT_FALSE(r) << why;
    if (!r) {
      EXPECT_EQ(r.error().code, std::errc::invalid_argument) << why;
    }
  };
  refused({}, "empty");
  refused({0x30}, "header only");
  refused({0x30, 0x00}, "empty sequence");
  Bytes b = good;
  b[0] = 0x31;
  refused(b, "SET instead of SEQUENCE");
  b = good;
  b.push_back(0x00);
  refused(b, "trailing byte");
  refused(Bytes(good.begin(), good.end() - 1), "truncated");
  b = good;
  b[1] = static_cast<std::uint8_t>(b[1] + 1);
  refused(b, "sequence length too long");
  b = good;
  b[2] = 0x04;
  refused(b, "OCTET STRING instead of INTEGER");
  b = good;
  b[36] = 0x03;
  refused(b, "s with the wrong tag");
  // Long-form length for the SEQUENCE.
  b = Bytes{0x30, 0x81, static_cast<std::uint8_t>(good.size() - 2)};
  b.insert(b.end(), good.begin() + 2, good.end());
  refused(b, "long-form length");
  refused({0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01}, "negative r");
  refused({0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01}, "non-minimal r");
  refused({0x30, 0x05, 0x02, 0x00, 0x02, 0x01, 0x01}, "empty INTEGER");
  refused({0x30, 0x03, 0x02, 0x01, 0x01}, "missing s");
  refused({0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, "third INTEGER");
  // r of 33 significant bytes (after the allowed leading 0x00 there are still 33).
  Bytes big = {0x30, 0x26, 0x02, 0x21};
  big.insert(big.end(), 33, 0x01);
  big.insert(big.end(), {0x02, 0x01, 0x01});
  refused(big, "r longer than 32 bytes");
  Bytes big2 = {0x30, 0x27, 0x02, 0x22, 0x00};
  big2.insert(big2.end(), 33, 0x81);
  big2.insert(big2.end(), {0x02, 0x01, 0x01});
  refused(big2, "r longer than 32 bytes after the leading zero");
  // 33 bytes with the padding octet is fine.
  Bytes pad = {0x30, 0x26, 0x02, 0x21, 0x00};
  pad.insert(pad.end(), 32, 0x81);
  pad.insert(pad.end(), {0x02, 0x01, 0x01});
  auto ok = signature_from_der(pad);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ((*ok)[0], 0x81);
  EXPECT_EQ((*ok)[63], 0x01);
}

}  // namespace
}  // namespace gridnode::crypto
