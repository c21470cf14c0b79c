#include "gridnode/crypto/keys.hpp"

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>

#include <array>

#include "internal.hpp"

namespace gridnode::crypto {
namespace {

// Frees a pair of MPIs however the function leaves (mbedtls_mpi_free zeroizes the limbs).
struct MpiPair {
  MpiPair() {
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
  }
  ~MpiPair() {
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
  }
  MpiPair(const MpiPair&) = delete;
  MpiPair& operator=(const MpiPair&) = delete;
  mbedtls_mpi r;
  mbedtls_mpi s;
};

const unsigned char* uchars(const char* p) { return reinterpret_cast<const unsigned char*>(p); }

// A parsed public key in its own Impl: type and curve checked, comb table built.
platform::Result<PublicKey> finish_public(std::shared_ptr<PublicKey::Impl> impl) {
  if (auto ok = check_p256(impl->pk, "public key"); !ok) {
    return tl::unexpected(ok.error());
  }
  mbedtls_ecp_keypair* kp = mbedtls_pk_ec(impl->pk);
  if (int rc = warm_base_point_table(kp->grp); rc != 0) {
    return fail_mbedtls(rc, "public key: mbedtls_ecp_mul");
  }
  // Q's own table for verify(); if it cannot be had, verify() uses mbedtls_ecdsa_verify.
  impl->q_table.setup(kp->Q);
  return KeyAccess::make(std::shared_ptr<const PublicKey::Impl>(std::move(impl)));
}

// A parsed or generated private key: type and curve checked; d·G recomputed and compared with
// the stored public point (a SEC1 file carries both, and mbedTLS does not check that they
// match: a mismatch would give signatures that never verify). The multiplication by G also
// leaves the comb table in the group. Then the public half is set up.
platform::Result<PrivateKey> finish_private(std::shared_ptr<PrivateKey::Impl> impl) {
  if (auto ok = check_p256(impl->pk, "private key"); !ok) {
    return tl::unexpected(ok.error());
  }
  mbedtls_ecp_keypair* kp = mbedtls_pk_ec(impl->pk);
  mbedtls_ecp_point q;
  mbedtls_ecp_point_init(&q);
  // f_rng NULL: mbedTLS 2.28 then blinds with its internal DRBG seeded from d.
  int rc = mbedtls_ecp_mul(&kp->grp, &q, &kp->d, &kp->grp.G, nullptr, nullptr);
  bool match = rc == 0 && mbedtls_ecp_point_cmp(&q, &kp->Q) == 0;
  mbedtls_ecp_point_free(&q);
  if (rc != 0) {
    return fail_mbedtls(rc, "private key: mbedtls_ecp_mul (private scalar out of range?)");
  }
  if (!match) {
    return fail_mbedtls(MBEDTLS_ERR_ECP_BAD_INPUT_DATA,
                        "private key: the public point stored with it does not belong to it");
  }
  auto pub = public_key_from_keypair(*kp);
  if (!pub) {
    return tl::unexpected(pub.error());
  }
  impl->pub.emplace(std::move(*pub));
  return KeyAccess::make(std::shared_ptr<const PrivateKey::Impl>(std::move(impl)));
}

}  // namespace

platform::Result<void> check_p256(const mbedtls_pk_context& pk, const std::string& what) {
  mbedtls_pk_type_t type = mbedtls_pk_get_type(&pk);
  if (type == MBEDTLS_PK_RSA || type == MBEDTLS_PK_RSA_ALT || type == MBEDTLS_PK_RSASSA_PSS) {
    return platform::fail(std::errc::invalid_argument,
                          what +
                              " is an RSA key; gridnode uses ECDSA P-256 (prime256v1) keys "
                              "only");
  }
  if (type != MBEDTLS_PK_ECKEY && type != MBEDTLS_PK_ECDSA) {
    const char* name = mbedtls_pk_get_name(&pk);
    return platform::fail(std::errc::invalid_argument,
                          what + " is a " + (name != nullptr ? name : "unknown") +
                              " key; gridnode uses ECDSA P-256 (prime256v1) keys only");
  }
  mbedtls_ecp_group_id id = mbedtls_pk_ec(pk)->grp.id;
  if (id != MBEDTLS_ECP_DP_SECP256R1) {
    const mbedtls_ecp_curve_info* info = mbedtls_ecp_curve_info_from_grp_id(id);
    return platform::fail(std::errc::invalid_argument,
                          what + " is an EC key on " +
                              (info != nullptr ? info->name : "an unnamed curve") +
                              "; gridnode uses ECDSA P-256 (secp256r1, prime256v1) keys only");
  }
  return {};
}

int warm_base_point_table(mbedtls_ecp_group& grp) {
  mbedtls_mpi one;
  mbedtls_ecp_point r;
  mbedtls_mpi_init(&one);
  mbedtls_ecp_point_init(&r);
  int rc = mbedtls_mpi_lset(&one, 1);
  if (rc == 0) {
    // The scalar is public (1), so no blinding RNG is needed.
    rc = mbedtls_ecp_mul(&grp, &r, &one, &grp.G, nullptr, nullptr);
  }
  mbedtls_ecp_point_free(&r);
  mbedtls_mpi_free(&one);
  return rc;
}

platform::Result<PublicKey> public_key_from_keypair(const mbedtls_ecp_keypair& src) {
  auto impl = std::make_shared<PublicKey::Impl>();
  if (int rc = mbedtls_pk_setup(&impl->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)); rc != 0) {
    return fail_mbedtls(rc, "public key: mbedtls_pk_setup");
  }
  mbedtls_ecp_keypair* kp = mbedtls_pk_ec(impl->pk);
  if (int rc = mbedtls_ecp_group_load(&kp->grp, src.grp.id); rc != 0) {
    return fail_mbedtls(rc, "public key: mbedtls_ecp_group_load");
  }
  if (int rc = mbedtls_ecp_copy(&kp->Q, &src.Q); rc != 0) {
    return fail_mbedtls(rc, "public key: mbedtls_ecp_copy");
  }
  return finish_public(std::move(impl));
}

// ---- PublicKey ----

PublicKey::PublicKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

PublicKey::~PublicKey() = default;

platform::Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  if (pem.find("-----BEGIN") == std::string_view::npos) {
    return platform::fail(std::errc::invalid_argument,
                          "public key: no \"-----BEGIN PUBLIC KEY-----\" PEM block");
  }
  // mbedTLS reads PEM only from a NUL-terminated buffer whose length counts the NUL.
  std::string text(pem);
  auto impl = std::make_shared<Impl>();
  if (int rc = mbedtls_pk_parse_public_key(&impl->pk, uchars(text.c_str()), text.size() + 1);
      rc != 0) {
    return fail_mbedtls(rc,
                        "public key: mbedtls_pk_parse_public_key: not a PEM "
                        "SubjectPublicKeyInfo (\"-----BEGIN PUBLIC KEY-----\")");
  }
  return finish_public(std::move(impl));
}

platform::Result<PublicKey> PublicKey::from_der(std::span<const std::uint8_t> der) {
  if (der.empty()) {
    return platform::fail(std::errc::invalid_argument, "public key: empty DER");
  }
  auto impl = std::make_shared<Impl>();
  // mbedtls_pk_parse_subpubkey takes a non-const cursor but only reads through it.
  auto* p = const_cast<unsigned char*>(der.data());
  const unsigned char* end = der.data() + der.size();
  if (int rc = mbedtls_pk_parse_subpubkey(&p, end, &impl->pk); rc != 0) {
    return fail_mbedtls(rc,
                        "public key: mbedtls_pk_parse_subpubkey: not a DER "
                        "SubjectPublicKeyInfo");
  }
  if (p != end) {
    return platform::fail(
        std::errc::invalid_argument,
        "public key: " + std::to_string(end - p) + " bytes after the DER SubjectPublicKeyInfo");
  }
  return finish_public(std::move(impl));
}

platform::Result<std::string> PublicKey::to_pem() const {
  // A P-256 SubjectPublicKeyInfo is 91 bytes of DER, 178 characters of PEM.
  std::array<unsigned char, 512> buf{};
  if (int rc = mbedtls_pk_write_pubkey_pem(&impl_->pk, buf.data(), buf.size()); rc != 0) {
    return fail_mbedtls(rc, "mbedtls_pk_write_pubkey_pem");
  }
  return std::string(reinterpret_cast<const char*>(buf.data()));
}

platform::Result<Bytes> PublicKey::to_der() const {
  std::array<unsigned char, 256> buf{};
  // mbedTLS writes DER backwards, at the end of the buffer, and returns its length.
  int n = mbedtls_pk_write_pubkey_der(&impl_->pk, buf.data(), buf.size());
  if (n < 0) {
    return fail_mbedtls(n, "mbedtls_pk_write_pubkey_der");
  }
  return Bytes(buf.end() - n, buf.end());
}

bool PublicKey::verify(const Digest& digest, const Signature& signature) const {
  mbedtls_ecp_keypair* kp = mbedtls_pk_ec(impl_->pk);
  MpiPair rs;
  if (mbedtls_mpi_read_binary(&rs.r, signature.data(), 32) != 0 ||
      mbedtls_mpi_read_binary(&rs.s, signature.data() + 32, 32) != 0) {
    return false;
  }
  // Both refuse r, s outside [1, n-1] with MBEDTLS_ERR_ECP_VERIFY_FAILED; any non-zero
  // (also an allocation failure) is "not verified".
  if (impl_->q_table.ready()) {
    return ecdsa_verify_with_tables(kp->grp, impl_->q_table, digest.data(), rs.r, rs.s) == 0;
  }
  return mbedtls_ecdsa_verify(&kp->grp, digest.data(), digest.size(), &kp->Q, &rs.r, &rs.s) == 0;
}

bool operator==(const PublicKey& a, const PublicKey& b) {
  if (a.impl_ == b.impl_) {
    return true;
  }
  const mbedtls_ecp_keypair* ka = mbedtls_pk_ec(a.impl_->pk);
  const mbedtls_ecp_keypair* kb = mbedtls_pk_ec(b.impl_->pk);
  return ka->grp.id == kb->grp.id && mbedtls_ecp_point_cmp(&ka->Q, &kb->Q) == 0;
}

// ---- PrivateKey ----

PrivateKey::PrivateKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

PrivateKey::~PrivateKey() = default;

platform::Result<PrivateKey> PrivateKey::generate(Random& random) {
  auto impl = std::make_shared<Impl>();
  if (int rc = mbedtls_pk_setup(&impl->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)); rc != 0) {
    return fail_mbedtls(rc, "mbedtls_pk_setup");
  }
  if (int rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(impl->pk), &Random::rng,
                                   &random);
      rc != 0) {
    return fail_mbedtls(rc, "mbedtls_ecp_gen_key: P-256");
  }
  return finish_private(std::move(impl));
}

platform::Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  if (pem.find("-----BEGIN") == std::string_view::npos) {
    return platform::fail(std::errc::invalid_argument,
                          "private key: no \"-----BEGIN EC PRIVATE KEY-----\" or \"-----BEGIN "
                          "PRIVATE KEY-----\" PEM block");
  }
  // mbedtls_pk_parse_key reads PEM only from a NUL-terminated buffer whose length counts the
  // NUL. The copy holds the secret: wipe it whatever happens.
  std::string text(pem);
  auto impl = std::make_shared<Impl>();
  int rc = mbedtls_pk_parse_key(&impl->pk, uchars(text.c_str()), text.size() + 1, nullptr, 0);
  mbedtls_platform_zeroize(text.data(), text.size());
  if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || rc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
    return fail_mbedtls(rc,
                        "private key is encrypted: the node key must be stored unencrypted "
                        "(and readable by its owner only)");
  }
  if (rc != 0) {
    return fail_mbedtls(rc,
                        "private key: mbedtls_pk_parse_key: not an unencrypted SEC1 (\"EC "
                        "PRIVATE KEY\") or PKCS#8 (\"PRIVATE KEY\") PEM key");
  }
  return finish_private(std::move(impl));
}

platform::Result<std::string> PrivateKey::to_pem() const {
  // A P-256 SEC1 key is 121 bytes of DER, 227 characters of PEM.
  std::array<unsigned char, 1024> buf{};
  int rc = mbedtls_pk_write_key_pem(&impl_->pk, buf.data(), buf.size());
  std::string pem;
  if (rc == 0) {
    pem = reinterpret_cast<const char*>(buf.data());
  }
  mbedtls_platform_zeroize(buf.data(), buf.size());
  if (rc != 0) {
    return fail_mbedtls(rc, "mbedtls_pk_write_key_pem");
  }
  return pem;
}

PublicKey PrivateKey::public_key() const { return *impl_->pub; }

platform::Result<Signature> PrivateKey::sign(const Digest& digest, Random& random) const {
  mbedtls_ecp_keypair* kp = mbedtls_pk_ec(impl_->pk);
  MpiPair rs;
  if (int rc = mbedtls_ecdsa_sign_det_ext(&kp->grp, &rs.r, &rs.s, &kp->d, digest.data(),
                                          digest.size(), MBEDTLS_MD_SHA256, &Random::rng, &random);
      rc != 0) {
    return fail_mbedtls(rc, "mbedtls_ecdsa_sign_det_ext");
  }
  Signature sig;
  if (int rc = mbedtls_mpi_write_binary(&rs.r, sig.data(), 32); rc != 0) {
    return fail_mbedtls(rc, "mbedtls_mpi_write_binary: r");
  }
  if (int rc = mbedtls_mpi_write_binary(&rs.s, sig.data() + 32, 32); rc != 0) {
    return fail_mbedtls(rc, "mbedtls_mpi_write_binary: s");
  }
  return sig;
}

}  // namespace gridnode::crypto
