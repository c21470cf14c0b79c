#include "gridnode/crypto/x509.hpp"

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include <array>
#include <cstring>
#include <vector>

#include "gridnode/platform/files.hpp"
#include "internal.hpp"

namespace gridnode::crypto {
namespace {

const unsigned char* uchars(const char* p) { return reinterpret_cast<const unsigned char*>(p); }

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil): no
// timegm(), whose answer would depend on the process's TZ handling.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t unix_seconds(const mbedtls_x509_time& t) {
  return days_from_civil(t.year, static_cast<unsigned>(t.mon), static_cast<unsigned>(t.day)) *
             86400 +
         t.hour * 3600 + t.min * 60 + t.sec;
}

platform::Result<std::string> dn_string(const mbedtls_x509_name& dn) {
  std::vector<char> buf(1024);
  for (;;) {
    int n = mbedtls_x509_dn_gets(buf.data(), buf.size(), &dn);
    if (n >= 0) {
      return std::string(buf.data(), static_cast<std::size_t>(n));
    }
    if (n != MBEDTLS_ERR_X509_BUFFER_TOO_SMALL || buf.size() >= 65536) {
      return fail_mbedtls(n, "mbedtls_x509_dn_gets");
    }
    buf.resize(buf.size() * 4);
  }
}

std::string first_common_name(const mbedtls_x509_name* dn) {
  for (; dn != nullptr; dn = dn->next) {
    if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &dn->oid) == 0) {
      return std::string(reinterpret_cast<const char*>(dn->val.p), dn->val.len);
    }
  }
  return {};
}

// mbedTLS judges validity periods by its own clock; verify_issued_by judges them at the
// caller's `now`, so the clock's verdicts are dropped here and made again by us.
int ignore_clock(void*, mbedtls_x509_crt*, int, std::uint32_t* flags) {
  *flags &= ~static_cast<std::uint32_t>(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
  return 0;
}

std::uint32_t time_flags(const Certificate& cert, std::int64_t now) {
  std::uint32_t flags = 0;
  if (now < cert.not_before()) {
    flags |= MBEDTLS_X509_BADCERT_FUTURE;
  }
  if (now > cert.not_after()) {
    flags |= MBEDTLS_X509_BADCERT_EXPIRED;
  }
  return flags;
}


}  // namespace

Certificate::Certificate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Certificate::~Certificate() = default;

platform::Result<Certificate> Certificate::from_der(std::span<const std::uint8_t> der) {
  if (der.empty()) {
    return platform::fail(std::errc::invalid_argument, "certificate: empty input");
  }
  auto impl = std::make_shared<Impl>();
  if (int rc = mbedtls_x509_crt_parse_der(&impl->crt, der.data(), der.size()); rc != 0) {
    return fail_mbedtls(rc, "certificate: mbedtls_x509_crt_parse_der: not an X.509 certificate");
  }
  mbedtls_x509_crt& crt = impl->crt;
  if (crt.raw.len != der.size()) {
    return platform::fail(std::errc::invalid_argument,
                          "certificate: " + std::to_string(der.size() - crt.raw.len) +
                              " bytes after the DER certificate");
  }
  auto subject = dn_string(crt.subject);
  if (!subject) {
    return tl::unexpected(subject.error());
  }
  impl->subject = std::move(*subject);
  if (auto ok = check_p256(crt.pk, "the key of certificate \"" + impl->subject + "\""); !ok) {
    return tl::unexpected(ok.error());
  }
  // Verifying what this certificate signed (as a CA) multiplies by G on crt.pk's own group:
  // build that table now, before the certificate can be shared between threads.
  if (int rc = warm_base_point_table(mbedtls_pk_ec(crt.pk)->grp); rc != 0) {
    return fail_mbedtls(rc, "certificate: mbedtls_ecp_mul");
  }
  auto pub = public_key_from_keypair(*mbedtls_pk_ec(crt.pk));
  if (!pub) {
    return tl::unexpected(pub.error());
  }
  impl->pub.emplace(std::move(*pub));
  impl->common_name = first_common_name(&crt.subject);
  impl->not_before = unix_seconds(crt.valid_from);
  impl->not_after = unix_seconds(crt.valid_to);
  return KeyAccess::make(std::shared_ptr<const Impl>(std::move(impl)));
}

platform::Result<Certificate> Certificate::from_pem(std::string_view pem) {
  // mbedtls_pem_read_buffer searches with strstr: it needs a NUL-terminated copy.
  std::string text(pem);
  mbedtls_pem_context ctx;
  mbedtls_pem_init(&ctx);
  std::size_t used = 0;
  int rc = mbedtls_pem_read_buffer(&ctx, "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----",
                                   uchars(text.c_str()), nullptr, 0, &used);
  if (rc == MBEDTLS_ERR_PEM_NO_HEADER_FOOTER_PRESENT) {
    mbedtls_pem_free(&ctx);
    return platform::fail(std::errc::invalid_argument,
                          "certificate: no complete \"-----BEGIN CERTIFICATE-----\" ... "
                          "\"-----END CERTIFICATE-----\" block");
  }
  if (rc != 0) {
    mbedtls_pem_free(&ctx);
    return fail_mbedtls(rc, "certificate: mbedtls_pem_read_buffer");
  }
  auto cert = from_der({ctx.buf, ctx.buflen});
  mbedtls_pem_free(&ctx);
  return cert;
}

platform::Result<Certificate> Certificate::load_file(const std::string& path) {
  std::string text;
  if (auto r = platform::read_file(path, text, 1 << 20); !r) {
    return tl::unexpected(r.error());
  }
  auto cert = text.find("-----BEGIN") != std::string::npos
                  ? from_pem(text)
                  : from_der({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
  if (!cert) {
    platform::Error e = cert.error();
    e.context = path + ": " + e.context;
    return tl::unexpected(std::move(e));
  }
  return cert;
}

std::string Certificate::subject() const { return impl_->subject; }

std::string Certificate::common_name() const { return impl_->common_name; }

PublicKey Certificate::public_key() const { return *impl_->pub; }

std::int64_t Certificate::not_before() const { return impl_->not_before; }

std::int64_t Certificate::not_after() const { return impl_->not_after; }

std::span<const std::uint8_t> Certificate::der() const {
  return {impl_->crt.raw.p, impl_->crt.raw.len};
}

platform::Result<void> Certificate::verify_issued_by(const Certificate& ca,
                                                     std::int64_t now) const {
  std::uint32_t flags = 0;
  // Neither certificate is modified: crt.next is null in both (one certificate per object), so
  // the chain is exactly this one and the trust list exactly `ca`.
  int rc = mbedtls_x509_crt_verify_with_profile(&impl_->crt, &ca.impl_->crt, nullptr,
                                                &mbedtls_x509_crt_profile_default, nullptr, &flags,
                                                &ignore_clock, nullptr);
  if (rc != 0 && rc != MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
    return fail_mbedtls(
        rc, "certificate \"" + impl_->subject + "\": mbedtls_x509_crt_verify_with_profile");
  }
  flags |= time_flags(*this, now);
  std::uint32_t ca_flags = time_flags(ca, now);
  if (flags == 0 && ca_flags == 0) {
    return {};
  }
  std::string why;
  if (flags != 0) {
    why = verify_reasons(flags);
  }
  if (ca_flags != 0) {
    why += (why.empty() ? "" : "; ") +
           std::string("the CA certificate is not valid at that time (") +
           verify_reasons(ca_flags) + ")";
  }
  return fail_mbedtls(MBEDTLS_ERR_X509_CERT_VERIFY_FAILED,
                      "certificate \"" + impl_->subject + "\" not verified as issued by \"" +
                          ca.impl_->subject + "\" at " + std::to_string(now) + ": " + why);
}

platform::Result<std::string> write_csr_pem(const PrivateKey& key, std::string_view subject,
                                            Random& random) {
  if (subject.empty() || subject.find('\0') != std::string_view::npos) {
    return platform::fail(std::errc::invalid_argument,
                          "certificate request: the subject must be a non-empty string such as "
                          "\"CN=node-17,O=gridnode\"");
  }
  const std::string subj(subject);
  mbedtls_x509write_csr csr;
  mbedtls_x509write_csr_init(&csr);
  mbedtls_x509write_csr_set_md_alg(&csr, MBEDTLS_MD_SHA256);
  mbedtls_x509write_csr_set_key(&csr, KeyAccess::pk(key));
  int rc = mbedtls_x509write_csr_set_subject_name(&csr, subj.c_str());
  if (rc != 0) {
    mbedtls_x509write_csr_free(&csr);
    return fail_mbedtls(rc, "certificate request: mbedtls_x509write_csr_set_subject_name: \"" +
                                subj + "\" (expected e.g. \"CN=node-17,O=gridnode\")");
  }
  std::vector<unsigned char> buf(4096 + 2 * subj.size());
  rc = mbedtls_x509write_csr_pem(&csr, buf.data(), buf.size(), &Random::rng, &random);
  mbedtls_x509write_csr_free(&csr);
  if (rc != 0) {
    return fail_mbedtls(rc, "certificate request: mbedtls_x509write_csr_pem");
  }
  return std::string(reinterpret_cast<const char*>(buf.data()));
}

// mbedtls_x509_crt_verify_info's lines ("The certificate validity has expired\n") joined by "; ".
std::string verify_reasons(std::uint32_t flags) {
  std::array<char, 2048> buf{};
  int n = mbedtls_x509_crt_verify_info(buf.data(), buf.size(), "", flags);
  std::string text = n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : "";
  while (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  for (std::size_t i = 0; (i = text.find('\n', i)) != std::string::npos;) {
    text.replace(i, 1, "; ");
  }
  return text.empty() ? "flags " + std::to_string(flags) : text;
}

}  // namespace gridnode::crypto
