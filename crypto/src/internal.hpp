#pragma once

// Private to crypto/: the mbedTLS contexts behind the public types, and helpers shared by the
// source files (and by the TLS code that will hand keys and certificates to mbedtls_ssl_*).

#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "gridnode/crypto/error.hpp"
#include "gridnode/crypto/keys.hpp"
#include "gridnode/crypto/x509.hpp"

namespace gridnode::crypto {

inline tl::unexpected<platform::Error> fail_mbedtls(int rc, std::string context) {
  return tl::unexpected<platform::Error>(mbedtls_error(rc, std::move(context)));
}

// The contexts are `mutable`: mbedTLS 2.28 takes non-const pointers even where it only reads
// (mbedtls_pk_write_*, mbedtls_ecdsa_verify, mbedtls_x509_crt_verify). After construction the
// only write is the group's fixed-base comb table, which we build before anyone else sees the
// object (warm_base_point_table), so shared copies are read-only from then on.
// A P-256 group whose base point is a public key Q instead of G, so that mbedTLS builds and
// keeps a comb table for Q (it keeps one only for a group's base point). Verifying then
// multiplies by two fixed points with tables, G and Q, instead of recomputing Q's table on
// every call (mbedtls_ecdsa_verify does): see ecdsa_verify.cpp.
class BasePointGroup {
 public:
  BasePointGroup() { mbedtls_ecp_group_init(&grp_); }
  ~BasePointGroup();
  BasePointGroup(const BasePointGroup&) = delete;
  BasePointGroup& operator=(const BasePointGroup&) = delete;

  // Loads P-256 with `q` as base point and builds its table; false (and then unused) if that
  // fails or the table does not reproduce q (a future mbedTLS with built-in tables for G).
  bool setup(const mbedtls_ecp_point& q);
  bool ready() const { return ready_; }
  mbedtls_ecp_group& group() const { return grp_; }

 private:
  mutable mbedtls_ecp_group grp_;
  bool ready_ = false;
};

struct PublicKey::Impl {
  Impl() { mbedtls_pk_init(&pk); }
  ~Impl() { mbedtls_pk_free(&pk); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  mutable mbedtls_pk_context pk;
  BasePointGroup q_table;  // ready() unless setup failed: verify() then uses mbedTLS's own path
};

struct PrivateKey::Impl {
  Impl() { mbedtls_pk_init(&pk); }
  // mbedtls_pk_free → mbedtls_ecp_keypair_free → mbedtls_mpi_free, which zeroizes d's limbs.
  ~Impl() { mbedtls_pk_free(&pk); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  mutable mbedtls_pk_context pk;
  std::optional<PublicKey> pub;  // always set once construction succeeded
};

struct Certificate::Impl {
  Impl() { mbedtls_x509_crt_init(&crt); }
  ~Impl() { mbedtls_x509_crt_free(&crt); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  mutable mbedtls_x509_crt crt;  // exactly one certificate (crt.next == nullptr)
  std::string subject;
  std::string common_name;
  std::int64_t not_before = 0;
  std::int64_t not_after = 0;
  std::optional<PublicKey> pub;
};

struct KeyAccess {
  static mbedtls_pk_context* pk(const PublicKey& key) { return &key.impl_->pk; }
  static mbedtls_pk_context* pk(const PrivateKey& key) { return &key.impl_->pk; }
  static mbedtls_x509_crt* crt(const Certificate& cert) { return &cert.impl_->crt; }
  static const PublicKey::Impl& impl(const PublicKey& key) { return *key.impl_; }

  static PublicKey make(std::shared_ptr<const PublicKey::Impl> impl) {
    return PublicKey(std::move(impl));
  }
  static PrivateKey make(std::shared_ptr<const PrivateKey::Impl> impl) {
    return PrivateKey(std::move(impl));
  }
  static Certificate make(std::shared_ptr<const Certificate::Impl> impl) {
    return Certificate(std::move(impl));
  }
};

// mbedtls_x509_crt_verify_info's lines ("The certificate validity has expired") joined by "; ".
std::string verify_reasons(std::uint32_t flags);

// OK when `pk` is an EC key on secp256r1 usable for ECDSA; otherwise invalid_argument saying
// what it is ("RSA key", "EC key on secp384r1"). `what` starts the message ("public key").
platform::Result<void> check_p256(const mbedtls_pk_context& pk, const std::string& what);

// Computes 1·G once so that mbedTLS stores the base point's comb table in `grp` (ecp.c keeps
// the table it builds for G). Later multiplications by G only read it: faster, and no data race
// when several threads share the group.
[[nodiscard]] int warm_base_point_table(mbedtls_ecp_group& grp);

// ECDSA verification (SEC 1 v2 §4.1.4) with comb tables for both G (in `grp`) and Q (in
// `q_table`): 0 when valid, MBEDTLS_ERR_ECP_VERIFY_FAILED or another mbedTLS error otherwise.
// The digest is 32 bytes (P-256's order has 256 bits, so no truncation).
int ecdsa_verify_with_tables(mbedtls_ecp_group& grp, const BasePointGroup& q_table,
                             const unsigned char* digest, const mbedtls_mpi& r,
                             const mbedtls_mpi& s);

// A PublicKey holding a copy of `src`'s point on a freshly loaded P-256 group (src must be
// P-256; check_p256 first).
platform::Result<PublicKey> public_key_from_keypair(const mbedtls_ecp_keypair& src);

}  // namespace gridnode::crypto
