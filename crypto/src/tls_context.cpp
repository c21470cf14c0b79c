// The shared half of the TLS layer: one mbedtls_ssl_config per endpoint, locked down to what
// the grid uses (see tls.hpp), and the subjectAltName iPAddress check mbedTLS 2.28 lacks.

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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

// The web endpoint's suites (tls.hpp): ECDHE with an AEAD, for either key type; mbedTLS takes
// those that fit our certificate's key. Go's crypto/tls offers all six by default.
constexpr int kWebCiphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

// ECDHE groups, and the curves of an ECDSA client certificate's key.
constexpr mbedtls_ecp_group_id kWebCurves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1,  MBEDTLS_ECP_DP_NONE,
};

constexpr int kWebSigHashes[] = {MBEDTLS_MD_SHA512, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA256,
                                 MBEDTLS_MD_NONE};

// What both kinds of context share: TLS 1.2 only, and the given suites, groups, signature
// hashes and certificate profile (all of them static: mbedTLS keeps the pointers).
int configure_tls12(mbedtls_ssl_config* conf, int endpoint, Random& random, const int* suites,
                    const mbedtls_ecp_group_id* curves, const int* hashes,
                    const mbedtls_x509_crt_profile* profile) {
  int rc = mbedtls_ssl_config_defaults(conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                       MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) {
    return rc;
  }
  mbedtls_ssl_conf_rng(conf, &Random::rng, &random);
  mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(conf, suites);
  mbedtls_ssl_conf_curves(conf, curves);
  mbedtls_ssl_conf_sig_hashes(conf, hashes);
  mbedtls_ssl_conf_cert_profile(conf, profile);
  return 0;
}

// mbedTLS's PEM parsers want the terminating NUL counted in the length.
int parse_crt_pem(mbedtls_x509_crt* crt, const std::string& pem) {
  return mbedtls_x509_crt_parse(crt, reinterpret_cast<const unsigned char*>(pem.c_str()),
                                pem.size() + 1);
}

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

const TlsOptions& TlsContext::options() const {
  if (!impl_->options) {
    std::fprintf(stderr, "TlsContext::options() called on a web context\n");
    std::abort();
  }
  return *impl_->options;
}

bool TlsContext::is_web() const { return impl_->web != nullptr; }

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
  const TlsOptions& opts = *impl->options;
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
  int rc = configure_tls12(conf, opts.server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                           *impl->random, kCiphersuites, kCurves, kSigHashes, &kCertProfile);
  if (rc != 0) {
    return fail_mbedtls(rc, std::string(side) + ": mbedtls_ssl_config_defaults");
  }
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

const char* client_auth_name(WebClientAuth mode) {
  switch (mode) {
    case WebClientAuth::no_client_cert:
      return "NoClientCert";
    case WebClientAuth::request_client_cert:
      return "RequestClientCert";
    case WebClientAuth::require_any_client_cert:
      return "RequireAnyClientCert";
    case WebClientAuth::verify_client_cert_if_given:
      return "VerifyClientCertIfGiven";
    case WebClientAuth::require_and_verify_client_cert:
      return "RequireAndVerifyClientCert";
  }
  return "?";
}

platform::Result<std::shared_ptr<TlsContext>> TlsContext::create_web_server(
    WebServerTlsOptions options) {
  const std::string side = "web TLS server";
  auto refuse = [&](const std::string& why) {
    return platform::fail(std::errc::invalid_argument, side + ": " + why);
  };
  if (options.handshake_timeout.count() <= 0 || options.shutdown_timeout.count() < 0) {
    return refuse("handshake_timeout must be positive");
  }
  if (options.min_version == WebTlsVersion::tls13) {
    return refuse(
        "min_version TLS13 cannot be met: this build's TLS library (mbedTLS 2.28) speaks TLS "
        "1.2 only; use TLS12");
  }
  const bool verifies = options.client_auth == WebClientAuth::verify_client_cert_if_given ||
                        options.client_auth == WebClientAuth::require_and_verify_client_cert;
  if (verifies && options.client_ca_pem.empty()) {
    return refuse(std::string("client_auth_type ") + client_auth_name(options.client_auth) +
                  " needs a client CA (client_ca_file)");
  }

  auto web = std::make_unique<WebServerState>();
  web->client_auth = options.client_auth;
  web->client_ca_name = options.client_ca_name;
  web->handshake_timeout = options.handshake_timeout;
  web->shutdown_timeout = options.shutdown_timeout;
  int rc = parse_crt_pem(&web->chain, options.cert_chain_pem);
  if (rc != 0) {
    // A positive count: some blocks of the chain could not be parsed.
    return rc > 0 ? refuse("the certificate chain has " + std::to_string(rc) +
                           " certificates that cannot be parsed")
                  : fail_mbedtls(rc, side + ": the certificate (chain) cannot be parsed");
  }
  rc = mbedtls_pk_parse_key(&web->key,
                            reinterpret_cast<const unsigned char*>(options.key_pem.c_str()),
                            options.key_pem.size() + 1, nullptr, 0);
  if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || rc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
    return refuse("the private key is encrypted (a passphrase-protected key is not supported)");
  }
  if (rc != 0) {
    return fail_mbedtls(rc, side + ": the private key cannot be parsed");
  }
  const mbedtls_pk_type_t type = mbedtls_pk_get_type(&web->key);
  if (type != MBEDTLS_PK_RSA && type != MBEDTLS_PK_ECKEY) {
    return refuse(std::string("the private key is ") + mbedtls_pk_get_name(&web->key) +
                  ": RSA or ECDSA only");
  }
  if (mbedtls_pk_check_pair(&web->chain.pk, &web->key) != 0) {
    char subject[256];
    if (mbedtls_x509_dn_gets(subject, sizeof subject, &web->chain.subject) < 0) {
      subject[0] = '\0';
    }
    return refuse(std::string("the private key does not belong to certificate \"") + subject +
                  "\" (the first of the chain)");
  }
  if (!options.client_ca_pem.empty()) {
    rc = parse_crt_pem(&web->client_ca, options.client_ca_pem);
    if (rc < 0) {
      return fail_mbedtls(rc, side + ": " + options.client_ca_name + " cannot be parsed");
    }
    if (web->client_ca.raw.p == nullptr) {
      return refuse(options.client_ca_name + " holds no certificate that can be parsed");
    }
    web->has_client_ca = true;
  }

  auto impl = std::make_unique<Impl>(std::move(web));
  WebServerState& w = *impl->web;
  auto random = Random::create("gridnode web tls server");
  if (!random) {
    return tl::unexpected(random.error());
  }
  impl->random = std::move(*random);

  mbedtls_ssl_config* conf = &impl->conf;
  // TLS 1.2 whatever the floor (tls10 and tls11 are met by it).
  rc = configure_tls12(conf, MBEDTLS_SSL_IS_SERVER, *impl->random, kWebCiphersuites, kWebCurves,
                       kWebSigHashes, &mbedtls_x509_crt_profile_default);
  if (rc != 0) {
    return fail_mbedtls(rc, side + ": mbedtls_ssl_config_defaults");
  }
  // REQUIRED only for RequireAndVerifyClientCert; the other asking modes take whatever the
  // client sends and TlsStream decides after the client's Certificate message (tls_stream.cpp).
  int authmode = MBEDTLS_SSL_VERIFY_OPTIONAL;
  if (w.client_auth == WebClientAuth::no_client_cert) {
    authmode = MBEDTLS_SSL_VERIFY_NONE;
  } else if (w.client_auth == WebClientAuth::require_and_verify_client_cert) {
    authmode = MBEDTLS_SSL_VERIFY_REQUIRED;
  }
  mbedtls_ssl_conf_authmode(conf, authmode);
  if (w.has_client_ca) {
    mbedtls_ssl_conf_ca_chain(conf, &w.client_ca, nullptr);
  }
  rc = mbedtls_ssl_conf_own_cert(conf, &w.chain, &w.key);
  if (rc != 0) {
    return fail_mbedtls(rc, side + ": mbedtls_ssl_conf_own_cert");
  }
  mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  return std::shared_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

}  // namespace gridnode::crypto
