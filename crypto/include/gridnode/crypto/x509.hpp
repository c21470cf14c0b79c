#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "gridnode/crypto/keys.hpp"
#include "gridnode/crypto/random.hpp"
#include "gridnode/crypto/sha256.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::crypto {

// One X.509 certificate whose key is ECDSA P-256 (the grid's node and CA certificates); any
// other key type is refused at parse time with a message naming it.
//
// Copyable and cheap to copy (copies share one immutable parsed certificate; never empty).
// The key's fixed-base table is precomputed at parse time, so verify_issued_by() may run on
// several threads at once with the same CA.
class Certificate {
 public:
  // The first "-----BEGIN CERTIFICATE-----" block in the text; text around it is ignored.
  [[nodiscard]] static platform::Result<Certificate> from_pem(std::string_view pem);
  // Exactly one DER certificate; trailing bytes are refused.
  [[nodiscard]] static platform::Result<Certificate> from_der(std::span<const std::uint8_t> der);
  // PEM (if the file contains "-----BEGIN") or DER, at most 1 MiB; errors name the path.
  [[nodiscard]] static platform::Result<Certificate> load_file(const std::string& path);

  Certificate(const Certificate&) = default;
  Certificate& operator=(const Certificate&) = default;
  ~Certificate();

  // "CN=node-1, O=gridnode", as mbedtls_x509_dn_gets writes it.
  std::string subject() const;
  // The subject's (first) CN, "" if none.
  std::string common_name() const;
  PublicKey public_key() const;
  // Validity period, unix seconds (UTC).
  std::int64_t not_before() const;
  std::int64_t not_after() const;
  // The certificate as DER.
  std::span<const std::uint8_t> der() const;

  // OK when this certificate was signed by `ca`'s key, `ca` may issue certificates, and both
  // are valid at `now` (unix seconds; the caller's clock, not mbedTLS's). Otherwise an Error
  // (MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) whose context holds mbedtls_x509_crt_verify_info's
  // reasons, e.g. "The certificate validity has expired".
  [[nodiscard]] platform::Result<void> verify_issued_by(const Certificate& ca,
                                                        std::int64_t now) const;

  struct Impl;

 private:
  friend struct KeyAccess;
  explicit Certificate(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// A PKCS#10 certificate request in PEM for `key`, signed with ECDSA-SHA256. `subject` is
// mbedTLS's comma-separated form, e.g. "CN=node-17,O=gridnode" (no spaces after commas).
[[nodiscard]] platform::Result<std::string> write_csr_pem(const PrivateKey& key,
                                                          std::string_view subject, Random& random);

}  // namespace gridnode::crypto
