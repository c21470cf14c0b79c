// The session's policy frames (docs/protocol.md §6b) and the bundle format's signature check,
// which the collector runs before it offers a bundle.
#include <gtest/gtest.h>

#include "gridnode/crypto/base64.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/policy_bundle.hpp"
#include "gridnode/protocol/session.hpp"

namespace gridnode::protocol {
namespace {

std::string bundle_of(std::string_view policy, const crypto::PrivateKey& key,
                      crypto::Random& random) {
  auto der = crypto::signature_to_der(key.sign(crypto::sha256(policy), random).value()).value();
  std::string out(kBundleMagic);
  out += "signature ";
  crypto::append_base64(der, out);
  out += "\n\n";
  out += policy;
  return out;
}

TEST(PolicySession, PushRoundTripsAFullSizeBundleAndRefusesAnOversizedOne) {
  Bytes b;
  PolicyPush p{std::string(kMaxBundleBytes, 'x')};
  encode(p, b);
  EXPECT_EQ(decode_policy_push(b).value(), p);
  // Framed: under the policy_bundle kind's limit, read back whole.
  Bytes framed;
  append_frame(framed, FrameKind::policy_bundle, b);
  FrameReader fr(framed);
  auto f = fr.next().value();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, FrameKind::policy_bundle);
  EXPECT_EQ(f->payload.size(), b.size());

  // One byte more than a bundle may have: refused by the message, whatever the frame allows.
  encode(PolicyPush{std::string(kMaxBundleBytes + 1, 'x')}, b);
  auto big = decode_policy_push(b);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, std::errc::file_too_large);
  EXPECT_NE(big.error().context.find("exceeds the limit"), std::string::npos);
  // A frame longer than the kind allows is refused before its payload is awaited.
  Bytes huge;
  Writer w(huge);
  w.u8(static_cast<std::uint8_t>(FrameKind::policy_bundle));
  w.uvarint(kMaxPolicyBundleFrame + 1);
  EXPECT_FALSE(FrameReader(huge).next());
  // policy_status is an ordinary session frame: 64 KiB.
  huge.clear();
  w.u8(static_cast<std::uint8_t>(FrameKind::policy_status));
  w.uvarint(kMaxSessionFrame + 1);
  EXPECT_FALSE(FrameReader(huge).next());
}

TEST(PolicySession, PushRefusesTruncationTrailingBytesAndOtherVersions) {
  Bytes b;
  encode(PolicyPush{"gridnode-policy-bundle 1\nsignature AA==\n\n[policy]\n"}, b);
  for (std::size_t n = 0; n < b.size(); ++n) {
    EXPECT_FALSE(decode_policy_push(std::span(b).first(n))) << n;
  }
  Bytes trailing = b;
  trailing.push_back(0);
  EXPECT_FALSE(decode_policy_push(trailing));
  Bytes v2 = b;
  v2[0] = 2;
  auto r = decode_policy_push(v2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::protocol_not_supported);
  // A length that claims more than is there: no allocation of the claim, an error.
  Bytes lie{kSessionVersion, 0xff, 0xff, 0x3f, 'a'};
  EXPECT_FALSE(decode_policy_push(lie));
}

TEST(PolicySession, StatusRoundTripsAndRefusesGarbage) {
  Bytes b;
  PolicyStatus s{PolicyStatus::Result::refused, crypto::sha256(std::string_view("bundle")), 2,
                 crypto::sha256(std::string_view("v2")),
                 "version 1 is not newer than version 2 in force (rollback)"};
  encode(s, b);
  EXPECT_EQ(decode_policy_status(b).value(), s);
  for (std::size_t n = 0; n < b.size(); ++n) {
    EXPECT_FALSE(decode_policy_status(std::span(b).first(n))) << n;
  }
  Bytes trailing = b;
  trailing.push_back(0);
  EXPECT_FALSE(decode_policy_status(trailing));
  Bytes unknown = b;
  unknown[1] = 3;  // result: in_force, applied, refused only
  auto r = decode_policy_status(unknown);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("unknown result 3"), std::string::npos) << r.error().context;
  EXPECT_EQ(to_string(PolicyStatus::Result::applied), "applied");

  PolicyStatus in_force{};
  encode(in_force, b);
  EXPECT_EQ(decode_policy_status(b).value(), in_force);
  // Random bytes never crash and never pass as a status with trailing garbage.
  Bytes garbage{kSessionVersion, 1, 0xde, 0xad};
  EXPECT_FALSE(decode_policy_status(garbage));
}

TEST(PolicySession, AnOldPeerRefusesTheNewKindsWhichIsWhyTheyNeedALPN) {
  // What a reader without these kinds does with one is what ALPN protects it from: kind 22
  // stands for a kind this build does not know.
  auto r = FrameReader(Bytes{22, 0}).next();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("unknown frame kind 22"), std::string::npos);
  EXPECT_EQ(kSessionAlpnPolicy, "gridnode/2");
}

TEST(PolicyBundleSignature, VerifiesWithThePolicyKeyOnly) {
  auto random = std::move(*crypto::Random::create("policy session test"));
  auto key = *crypto::PrivateKey::generate(*random);
  auto stranger = *crypto::PrivateKey::generate(*random);
  const std::string policy = "[policy]\nversion = 2\n";
  std::string good = bundle_of(policy, key, *random);
  auto b = verify_bundle_signature(good, key.public_key());
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->policy, policy);

  auto other = verify_bundle_signature(bundle_of(policy, stranger, *random), key.public_key());
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, std::errc::permission_denied);
  EXPECT_NE(other.error().context.find("does not verify"), std::string::npos);

  std::string tampered = good;
  tampered.back() = '3';
  EXPECT_EQ(verify_bundle_signature(tampered, key.public_key()).error().code,
            std::errc::permission_denied);
  EXPECT_EQ(verify_bundle_signature(policy, key.public_key()).error().code,
            std::errc::invalid_argument);  // unsigned
  EXPECT_EQ(verify_bundle_signature("gridnode-policy-bundle 1\nsignature !!\n\nx", key.public_key())
                .error()
                .code,
            std::errc::invalid_argument);
  EXPECT_EQ(
      verify_bundle_signature(std::string(kMaxBundleBytes + 1, 'g'), key.public_key()).error().code,
      std::errc::file_too_large);
}

}  // namespace
}  // namespace gridnode::protocol
