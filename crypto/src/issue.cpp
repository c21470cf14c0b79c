#include "gridnode/crypto/issue.hpp"

#include <arpa/inet.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include <array>
#include <cstring>
#include <ctime>

#include "internal.hpp"

namespace gridnode::crypto {
namespace {

// "YYYYMMDDhhmmss", UTC, as mbedtls_x509write_crt_set_validity wants it.
std::string x509_time(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::array<char, 16> buf{};
  std::strftime(buf.data(), buf.size(), "%Y%m%d%H%M%S", &tm);
  return buf.data();
}

// DER length octets.
void der_length(std::string& out, std::size_t n) {
  if (n < 0x80) {
    out += static_cast<char>(n);
  } else if (n < 0x100) {
    out += '\x81';
    out += static_cast<char>(n);
  } else {
    out += '\x82';
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
  }
}

void der_tlv(std::string& out, std::uint8_t tag, std::string_view value) {
  out += static_cast<char>(tag);
  der_length(out, value.size());
  out.append(value);
}

// GeneralNames: [2] dNSName, [7] iPAddress (4 or 16 octets).
platform::Result<std::string> subject_alt_names(const CertificateProfile& p) {
  std::string names;
  for (const auto& dns : p.dns_names) {
    der_tlv(names, 0x82, dns);
  }
  for (const auto& ip : p.ip_addresses) {
    std::array<unsigned char, 16> addr{};
    if (::inet_pton(AF_INET, ip.c_str(), addr.data()) == 1) {
      der_tlv(names, 0x87, std::string_view(reinterpret_cast<char*>(addr.data()), 4));
    } else if (::inet_pton(AF_INET6, ip.c_str(), addr.data()) == 1) {
      der_tlv(names, 0x87, std::string_view(reinterpret_cast<char*>(addr.data()), 16));
    } else {
      return platform::fail(std::errc::invalid_argument, "not an IP address: " + ip);
    }
  }
  std::string seq;
  der_tlv(seq, 0x30, names);
  return seq;
}

// ExtKeyUsageSyntax with one purpose.
std::string extended_key_usage(CertificateProfile::Kind kind) {
  // id-kp-serverAuth 1.3.6.1.5.5.7.3.1, id-kp-clientAuth 1.3.6.1.5.5.7.3.2
  std::string oid = kind == CertificateProfile::Kind::server ? std::string("\x2b\x06\x01\x05\x05\x07\x03\x01", 8)
                                                             : std::string("\x2b\x06\x01\x05\x05\x07\x03\x02", 8);
  std::string inner;
  der_tlv(inner, 0x06, oid);
  std::string seq;
  der_tlv(seq, 0x30, inner);
  return seq;
}

// mbedtls_x509_dn_gets writes "CN=a, O=b"; the write API parses "CN=a,O=b".
std::string compact_dn(const std::string& dn) {
  std::string out;
  for (std::size_t i = 0; i < dn.size(); ++i) {
    if (dn[i] == ',' && i + 1 < dn.size() && dn[i + 1] == ' ') {
      out += ',';
      ++i;
    } else {
      out += dn[i];
    }
  }
  return out;
}

struct CrtWriter {
  CrtWriter() { mbedtls_x509write_crt_init(&ctx); }
  ~CrtWriter() { mbedtls_x509write_crt_free(&ctx); }
  mbedtls_x509write_cert ctx;
};

struct Mpi {
  Mpi() { mbedtls_mpi_init(&v); }
  ~Mpi() { mbedtls_mpi_free(&v); }
  mbedtls_mpi v;
};

struct Csr {
  Csr() { mbedtls_x509_csr_init(&csr); }
  ~Csr() { mbedtls_x509_csr_free(&csr); }
  mbedtls_x509_csr csr;
};

}  // namespace

platform::Result<std::string> issue_certificate_pem(const PublicKey& subject_key,
                                                    const CertificateProfile& profile,
                                                    const PrivateKey& issuer_key,
                                                    const std::optional<Certificate>& issuer,
                                                    Random& random) {
  if (profile.not_after <= profile.not_before) {
    return platform::fail(std::errc::invalid_argument, "certificate would never be valid");
  }
  if (issuer && !(issuer->public_key() == issuer_key.public_key())) {
    return platform::fail(std::errc::invalid_argument,
                          "the CA key does not belong to the CA certificate");
  }
  CrtWriter w;
  mbedtls_x509write_crt_set_version(&w.ctx, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&w.ctx, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&w.ctx, KeyAccess::pk(subject_key));
  mbedtls_x509write_crt_set_issuer_key(&w.ctx, KeyAccess::pk(issuer_key));
  int rc = mbedtls_x509write_crt_set_subject_name(&w.ctx, profile.subject.c_str());
  if (rc != 0) {
    return fail_mbedtls(rc, "subject \"" + profile.subject + "\"");
  }
  std::string issuer_name = issuer ? compact_dn(issuer->subject()) : profile.subject;
  if ((rc = mbedtls_x509write_crt_set_issuer_name(&w.ctx, issuer_name.c_str())) != 0) {
    return fail_mbedtls(rc, "issuer \"" + issuer_name + "\"");
  }
  std::array<unsigned char, 16> serial{};
  if (auto r = random.fill(serial); !r) {
    return tl::unexpected(r.error());
  }
  serial[0] &= 0x7f;  // a positive INTEGER
  serial[0] |= 0x01;  // and not shorter than 16 octets
  Mpi sn;
  if ((rc = mbedtls_mpi_read_binary(&sn.v, serial.data(), serial.size())) != 0 ||
      (rc = mbedtls_x509write_crt_set_serial(&w.ctx, &sn.v)) != 0) {
    return fail_mbedtls(rc, "serial number");
  }
  if ((rc = mbedtls_x509write_crt_set_validity(&w.ctx, x509_time(profile.not_before).c_str(),
                                               x509_time(profile.not_after).c_str())) != 0) {
    return fail_mbedtls(rc, "validity");
  }
  const bool ca = profile.kind == CertificateProfile::Kind::ca;
  if ((rc = mbedtls_x509write_crt_set_basic_constraints(&w.ctx, ca ? 1 : 0, ca ? 0 : -1)) != 0 ||
      (rc = mbedtls_x509write_crt_set_key_usage(
           &w.ctx, ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN |
                            MBEDTLS_X509_KU_DIGITAL_SIGNATURE
                      : MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) != 0 ||
      (rc = mbedtls_x509write_crt_set_subject_key_identifier(&w.ctx)) != 0 ||
      (rc = mbedtls_x509write_crt_set_authority_key_identifier(&w.ctx)) != 0) {
    return fail_mbedtls(rc, "certificate extensions");
  }
  if (!ca) {
    std::string eku = extended_key_usage(profile.kind);
    if ((rc = mbedtls_x509write_crt_set_extension(
             &w.ctx, MBEDTLS_OID_EXTENDED_KEY_USAGE, MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
             0, reinterpret_cast<const unsigned char*>(eku.data()), eku.size())) != 0) {
      return fail_mbedtls(rc, "extendedKeyUsage");
    }
  }
  if (!profile.dns_names.empty() || !profile.ip_addresses.empty()) {
    auto san = subject_alt_names(profile);
    if (!san) {
      return tl::unexpected(san.error());
    }
    if ((rc = mbedtls_x509write_crt_set_extension(
             &w.ctx, MBEDTLS_OID_SUBJECT_ALT_NAME, MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
             0, reinterpret_cast<const unsigned char*>(san->data()), san->size())) != 0) {
      return fail_mbedtls(rc, "subjectAltName");
    }
  }
  std::string pem(8192, '\0');
  rc = mbedtls_x509write_crt_pem(&w.ctx, reinterpret_cast<unsigned char*>(pem.data()), pem.size(),
                                 &Random::rng, &random);
  if (rc != 0) {
    return fail_mbedtls(rc, "writing the certificate");
  }
  pem.resize(pem.find('\0'));
  return pem;
}

platform::Result<CertificateRequest> parse_csr_pem(std::string_view pem) {
  std::string text(pem);  // mbedTLS wants the PEM NUL-terminated, the NUL counted
  Csr c;
  int rc = mbedtls_x509_csr_parse(&c.csr, reinterpret_cast<const unsigned char*>(text.c_str()),
                                  text.size() + 1);
  if (rc != 0) {
    return fail_mbedtls(rc, "certificate request");
  }
  if (auto r = check_p256(c.csr.pk, "certificate request key"); !r) {
    return tl::unexpected(r.error());
  }
  // mbedTLS parses a CSR without checking its self-signature: do it, so that a request whose
  // key does not sign it (someone else's public key) is refused.
  const mbedtls_md_info_t* md = mbedtls_md_info_from_type(c.csr.sig_md);
  if (md == nullptr) {
    return platform::fail(std::errc::invalid_argument, "certificate request: unknown digest");
  }
  std::array<unsigned char, MBEDTLS_MD_MAX_SIZE> hash{};
  if ((rc = mbedtls_md(md, c.csr.cri.p, c.csr.cri.len, hash.data())) != 0) {
    return fail_mbedtls(rc, "certificate request digest");
  }
  if ((rc = mbedtls_pk_verify_ext(c.csr.sig_pk, c.csr.sig_opts, &c.csr.pk, c.csr.sig_md,
                                  hash.data(), mbedtls_md_get_size(md), c.csr.sig.p,
                                  c.csr.sig.len)) != 0) {
    return fail_mbedtls(rc, "certificate request signature");
  }
  std::array<char, 512> dn{};
  if (mbedtls_x509_dn_gets(dn.data(), dn.size(), &c.csr.subject) < 0) {
    return platform::fail(std::errc::invalid_argument, "certificate request: subject too long");
  }
  auto key = public_key_from_keypair(*mbedtls_pk_ec(c.csr.pk));
  if (!key) {
    return tl::unexpected(key.error());
  }
  CertificateRequest req{dn.data(), "", std::move(*key)};
  for (const mbedtls_x509_name* n = &c.csr.subject; n != nullptr; n = n->next) {
    if (n->oid.p != nullptr && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
      req.common_name.assign(reinterpret_cast<const char*>(n->val.p), n->val.len);
      break;
    }
  }
  return req;
}

}  // namespace gridnode::crypto
