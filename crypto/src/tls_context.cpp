// The shared half of the TLS layer: one mbedtls_ssl_config per endpoint, locked down to what
// the grid uses (see tls.hpp), and the subjectAltName iPAddress check mbedTLS 2.28 lacks.

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <algorithm>
#include <asio/ip/address.hpp>
#include <system_error>

#include "gridnode/crypto/tls.hpp"
#include "internal.hpp"
#include "tls_internal.hpp"

namespace gridnode::crypto {
namespace {

// mbedTLS keeps pointers to these lists (zero-terminated): they must outlive every config.
// Server preference order: AES-GCM first (AES-NI on the collector), ChaCha20 for nodes
// without AES instructions.
constexpr int kCiphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

// The ECDHE group and, through the profile below, the only certificate curve.
constexpr mbedtls_ecp_group_id kCurves[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};

// Hashes for ServerKeyExchange and CertificateVerify signatures. SHA-384 stays because
// mbedTLS's client signs CertificateVerify with the suite's hash under AES-256-GCM-SHA384.
constexpr int kSigHashes[] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_NONE};

// Certificates in a peer's chain: ECDSA on P-256, signed with SHA-2.
const mbedtls_x509_crt_profile kCertProfile = {
    MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA512),
    MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECDSA) | MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECKEY),
    MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP256R1),
    2048,  // RSA minimum: irrelevant, RSA is not allowed at all
};

// "10.0.0.5", "::1" or "[::1]" as 4 or 16 bytes; nullopt for a DNS name.
std::optional<std::vector<std::uint8_t>> parse_ip_literal(std::string name) {
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  std::error_code ec;
  asio::ip::address addr = asio::ip::make_address(name, ec);
  if (ec) {
    return std::nullopt;
  }
  if (addr.is_v4()) {
    auto b = addr.to_v4().to_bytes();
    return std::vector<std::uint8_t>(b.begin(), b.end());
  }
  auto b = addr.to_v6().to_bytes();
  return std::vector<std::uint8_t>(b.begin(), b.end());
}

// Reads one TLV of tag `tag` at *p; returns false on any malformation.
bool get_tag(unsigned char** p, const unsigned char* end, std::size_t* len, int tag) {
  return mbedtls_asn1_get_tag(p, end, len, tag) == 0;
}

}  // namespace

bool san_has_ip_address(const mbedtls_x509_crt& crt, std::span<const std::uint8_t> ip) {
  if (crt.v3_ext.p == nullptr || crt.v3_ext.len == 0) {
    return false;
  }
  // mbedtls_x509_get_ext leaves v3_ext on the Extensions SEQUENCE inside the [3] wrapper;
  // accept the wrapper too, in case a release points at it instead.
  unsigned char* p = crt.v3_ext.p;
  const unsigned char* end = p + crt.v3_ext.len;
  std::size_t len = 0;
  if (*p == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 3)) {
    if (!get_tag(&p, end, &len, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 3)) {
      return false;
    }
    end = p + len;
  }
  // Extensions ::= SEQUENCE OF Extension
  if (!get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) || p + len > end) {
    return false;
  }
  end = p + len;
  while (p < end) {
    // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    if (!get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) {
      return false;
    }
    unsigned char* ext_end = p + len;
    std::size_t oid_len = 0;
    if (!get_tag(&p, ext_end, &oid_len, MBEDTLS_ASN1_OID)) {
      return false;
    }
    mbedtls_x509_buf oid{MBEDTLS_ASN1_OID, oid_len, p};
    p += oid_len;
    if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) != 0) {
      p = ext_end;
      continue;
    }
    if (p < ext_end && *p == MBEDTLS_ASN1_BOOLEAN) {
      int critical = 0;
      if (mbedtls_asn1_get_bool(&p, ext_end, &critical) != 0) {
        return false;
      }
    }
    std::size_t value_len = 0;
    if (!get_tag(&p, ext_end, &value_len, MBEDTLS_ASN1_OCTET_STRING)) {
      return false;
    }
    // GeneralNames ::= SEQUENCE OF GeneralName; iPAddress is [7] IMPLICIT OCTET STRING.
    if (!get_tag(&p, ext_end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) {
      return false;
    }
    const unsigned char* names_end = p + len;
    if (names_end > ext_end) {
      return false;
    }
    while (p < names_end) {
      const unsigned char tag = *p++;
      std::size_t name_len = 0;
      if (mbedtls_asn1_get_len(&p, names_end, &name_len) != 0) {
        return false;
      }
      if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS) &&
          name_len == ip.size() && std::equal(ip.begin(), ip.end(), p)) {
        return true;
      }
      p += name_len;
    }
    return false;  // one subjectAltName extension per certificate (RFC 5280 §4.2)
  }
  return false;
}

TlsContext::TlsContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TlsContext::~TlsContext() = default;

const TlsOptions& TlsContext::options() const { return impl_->options; }

platform::Result<std::shared_ptr<TlsContext>> TlsContext::create(TlsOptions options) {
  const char* side = options.server ? "TLS server" : "TLS client";
  if (!options.server && options.server_name.empty()) {
    return platform::fail(std::errc::invalid_argument,
                          std::string(side) +
                              ": server_name is empty (the collector's DNS name or IP address "
                              "its certificate must carry)");
  }
  if (options.handshake_timeout.count() <= 0 || options.shutdown_timeout.count() < 0) {
    return platform::fail(std::errc::invalid_argument,
                          std::string(side) + ": handshake_timeout must be positive");
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  const TlsOptions& opts = impl->options;
  mbedtls_x509_crt* own = KeyAccess::crt(opts.cert);
  mbedtls_pk_context* key = KeyAccess::pk(opts.key);
  if (mbedtls_pk_check_pair(&own->pk, key) != 0) {
    return platform::fail(std::errc::invalid_argument,
                          std::string(side) +
                              ": the private key does not belong to certificate \"" +
                              opts.cert.subject() + "\"");
  }
  if (!opts.server) {
    impl->server_ip = parse_ip_literal(opts.server_name);
  }

  auto random = Random::create(opts.server ? "gridnode tls server" : "gridnode tls client");
  if (!random) {
    return tl::unexpected(random.error());
  }
  impl->random = std::move(*random);

  mbedtls_ssl_config* conf = &impl->conf;
  int rc =
      mbedtls_ssl_config_defaults(conf, opts.server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                  MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) {
    return fail_mbedtls(rc, std::string(side) + ": mbedtls_ssl_config_defaults");
  }
  mbedtls_ssl_conf_rng(conf, &Random::rng, impl->random.get());
  mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(conf, kCiphersuites);
  mbedtls_ssl_conf_curves(conf, kCurves);
  mbedtls_ssl_conf_sig_hashes(conf, kSigHashes);
  mbedtls_ssl_conf_cert_profile(conf, &kCertProfile);
  // Both sides: a peer without a certificate from the CA does not get through.
  mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(conf, KeyAccess::crt(opts.ca), nullptr);
  rc = mbedtls_ssl_conf_own_cert(conf, own, key);
  if (rc != 0) {
    return fail_mbedtls(rc, std::string(side) + ": mbedtls_ssl_conf_own_cert");
  }
  if (!opts.alpn.empty()) {
    for (const auto& name : opts.alpn) {
      if (name.empty() || name.size() > 255) {
        return platform::fail(std::errc::invalid_argument,
                              std::string(side) + ": ALPN names are 1 to 255 bytes");
      }
      impl->alpn.push_back(name.c_str());
    }
    impl->alpn.push_back(nullptr);
    rc = mbedtls_ssl_conf_alpn_protocols(conf, impl->alpn.data());
    if (rc != 0) {
      return fail_mbedtls(rc, std::string(side) + ": mbedtls_ssl_conf_alpn_protocols");
    }
  }
  // A renegotiation would bring a second certificate check in the middle of the data.
  mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
  if (!opts.server) {
    // Every connection is a full handshake with a fresh certificate check.
    mbedtls_ssl_conf_session_tickets(conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
  }
#endif
  return std::shared_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

}  // namespace gridnode::crypto
