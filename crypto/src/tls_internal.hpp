#pragma once

// Private to crypto/: what TlsStream needs of TlsContext, and the subjectAltName check.

#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "gridnode/crypto/random.hpp"
#include "gridnode/crypto/tls.hpp"

namespace gridnode::crypto {

// create_web_server's parsed material. Declared before the config that points at it.
struct WebServerState {
  WebServerState() {
    mbedtls_x509_crt_init(&chain);
    mbedtls_pk_init(&key);
    mbedtls_x509_crt_init(&client_ca);
  }
  ~WebServerState() {
    mbedtls_x509_crt_free(&client_ca);
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&chain);
  }
  WebServerState(const WebServerState&) = delete;
  WebServerState& operator=(const WebServerState&) = delete;

  WebClientAuth client_auth = WebClientAuth::no_client_cert;
  std::string client_ca_name;
  bool has_client_ca = false;
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds shutdown_timeout{2000};
  mbedtls_x509_crt chain;
  mbedtls_pk_context key;
  mbedtls_x509_crt client_ca;
};

// Members in dependency order: the config points at the DRBG (p_rng) and at the CA, the
// certificate and the key held in `options` (or `web`), so it is declared last and freed first.
// Exactly one of `options` (grid, create()) and `web` (create_web_server()) is set.
struct TlsContext::Impl {
  explicit Impl(TlsOptions opts) : options(std::move(opts)) { mbedtls_ssl_config_init(&conf); }
  explicit Impl(std::unique_ptr<WebServerState> w) : web(std::move(w)) {
    mbedtls_ssl_config_init(&conf);
  }
  ~Impl() { mbedtls_ssl_config_free(&conf); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  bool server() const { return web != nullptr || options->server; }
  std::chrono::milliseconds handshake_timeout() const {
    return web ? web->handshake_timeout : options->handshake_timeout;
  }
  std::chrono::milliseconds shutdown_timeout() const {
    return web ? web->shutdown_timeout : options->shutdown_timeout;
  }

  std::optional<TlsOptions> options;
  std::unique_ptr<WebServerState> web;
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
