#pragma once

#include <memory>

#include "gridnode/crypto/crypto.hpp"

namespace gridnode::collector {

// A node's public key as the collector checks its reports' signatures: ECDSA P-256 with
// OpenSSL's libcrypto, whose P-256 arithmetic (constant-time assembly, ecp_nistz256) verifies
// about 10x faster on this machine than mbedTLS 2.28's, tables and all (bench/crypto_bench.cpp,
// BM_Verify against BM_VerifyOpenSsl). The collector verifies a signature per batch of every
// node, and at a steady interval a batch is one report: verification is then most of its CPU.
// Only the collector links libcrypto; the agent, whose resident memory is a product figure,
// keeps to mbedTLS. When OpenSSL cannot take the key (it always can: a P-256 key checked by
// mbedTLS), verify() is mbedTLS's PublicKey::verify.
//
// Not thread-safe (one verification context, reused): one per node, like NodeIngest.
class ReportVerifier {
 public:
  explicit ReportVerifier(crypto::PublicKey key);
  ReportVerifier(ReportVerifier&&) noexcept;
  ReportVerifier& operator=(ReportVerifier&&) noexcept;
  ~ReportVerifier();

  // True when `signature` (raw r||s) is a valid signature of `digest` by this key; false for a
  // wrong or malformed one (r or s zero or not below n), as PublicKey::verify.
  bool verify(const crypto::Digest& digest, const crypto::Signature& signature) const;
  const crypto::PublicKey& key() const { return key_; }
  // Whether OpenSSL verifies (tests).
  bool uses_openssl() const { return ctx_ != nullptr; }

 private:
  struct CtxFree {
    void operator()(void* ctx) const;
  };
  crypto::PublicKey key_;
  std::unique_ptr<void, CtxFree> ctx_;  // EVP_PKEY_CTX, initialised for verification
};

}  // namespace gridnode::collector
