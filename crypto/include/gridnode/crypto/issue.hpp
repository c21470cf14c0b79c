#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/crypto/keys.hpp"
#include "gridnode/crypto/random.hpp"
#include "gridnode/crypto/x509.hpp"
#include "gridnode/platform/result.hpp"

// Issuing certificates: what `gridnode-collector pki` needs for a throw-away or small-site CA.
// The grid's real CA is an operator's business; this is the reference and test tooling.
namespace gridnode::crypto {

struct CertificateProfile {
  enum class Kind : std::uint8_t { ca, server, client };
  Kind kind = Kind::client;
  std::string subject;                    // mbedTLS form: "CN=node-1,O=gridnode"
  std::vector<std::string> dns_names;     // subjectAltName dNSName entries
  std::vector<std::string> ip_addresses;  // subjectAltName iPAddress entries ("127.0.0.1", "::1")
  std::int64_t not_before = 0;            // unix seconds
  std::int64_t not_after = 0;
};

// An X.509 v3 certificate (PEM) for `subject_key`, signed with ECDSA-SHA256 by `issuer_key`;
// `issuer` is the CA's certificate, or empty for a self-signed CA. A CA gets basicConstraints
// CA:TRUE, pathlen 0 and keyCertSign; a server serverAuth, a client clientAuth; both
// digitalSignature. A random 128-bit serial; subject and authority key identifiers.
[[nodiscard]] platform::Result<std::string> issue_certificate_pem(
    const PublicKey& subject_key, const CertificateProfile& profile, const PrivateKey& issuer_key,
    const std::optional<Certificate>& issuer, Random& random);

// A PKCS#10 request whose self-signature has been checked.
struct CertificateRequest {
  std::string subject;      // as mbedtls_x509_dn_gets prints it
  std::string common_name;  // "" if none
  PublicKey key;
};
[[nodiscard]] platform::Result<CertificateRequest> parse_csr_pem(std::string_view pem);

}  // namespace gridnode::crypto
