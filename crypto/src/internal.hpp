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
struct PublicKey::Impl {
  Impl() { mbedtls_pk_init(&pk); }
  ~Impl() { mbedtls_pk_free(&pk); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  mutable mbedtls_pk_context pk;
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

// OK when `pk` is an EC key on secp256r1 usable for ECDSA; otherwise invalid_argument saying
// what it is ("RSA key", "EC key on secp384r1"). `what` starts the message ("public key").
platform::Result<void> check_p256(const mbedtls_pk_context& pk, const std::string& what);

// Computes 1·G once so that mbedTLS stores the base point's comb table in `grp` (ecp.c keeps
// the table it builds for G). Later multiplications by G only read it: faster, and no data race
// when several threads share the group.
[[nodiscard]] int warm_base_point_table(mbedtls_ecp_group& grp);

// A PublicKey holding a copy of `src`'s point on a freshly loaded P-256 group (src must be
// P-256; check_p256 first).
platform::Result<PublicKey> public_key_from_keypair(const mbedtls_ecp_keypair& src);

}  // namespace gridnode::crypto
