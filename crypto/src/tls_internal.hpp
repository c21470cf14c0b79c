#pragma once

// Private to crypto/: what TlsStream needs of TlsContext, and the subjectAltName check.

#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "gridnode/crypto/random.hpp"
#include "gridnode/crypto/tls.hpp"

namespace gridnode::crypto {

// Members in dependency order: the config points at the DRBG (p_rng) and at the CA, the
// certificate and the key held in `options`, so it is declared last and freed first.
struct TlsContext::Impl {
  explicit Impl(TlsOptions opts) : options(std::move(opts)) { mbedtls_ssl_config_init(&conf); }
  ~Impl() { mbedtls_ssl_config_free(&conf); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  TlsOptions options;
  // Client: server_name as an address (4 or 16 bytes) when it is an IP literal; then
  // mbedtls_ssl_set_hostname is not called and the SAN iPAddress check replaces it.
  std::optional<std::vector<std::uint8_t>> server_ip;
  std::unique_ptr<Random> random;
  std::vector<const char*> alpn;  // options.alpn's names, null-terminated, as mbedTLS wants them
  mbedtls_ssl_config conf;
};

// True when the certificate's subjectAltName extension lists `ip` (4 or 16 bytes, network
// order) as an iPAddress. mbedTLS 2.28 neither matches nor keeps these entries (its
// subject_alt_names list holds dNSName and otherName only), so the extensions are walked
// here. A malformed extension block is "not listed".
bool san_has_ip_address(const mbedtls_x509_crt& crt, std::span<const std::uint8_t> ip);

}  // namespace gridnode::crypto
