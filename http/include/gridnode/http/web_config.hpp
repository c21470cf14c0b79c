#pragma once

// exporter-toolkit's web configuration file (--web.config.file), read as node_exporter reads
// it, so that an operator's existing file works unchanged:
//
//   tls_server_config:
//     cert_file: server.crt          # PEM chain; RSA or ECDSA key
//     key_file: server.key
//     client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default), RequestClientCert,
//                                    # RequireAnyClientCert, VerifyClientCertIfGiven, …
//     client_ca_file: ca.crt
//     min_version: TLS12
//   http_server_config:
//     headers: {X-Frame-Options: deny}
//   basic_auth_users:
//     prometheus: $2y$10$…           # bcrypt
//
// Parsed with libyaml. A key we do not support (cipher_suites, http2, …) is refused with the
// file, line and key named, never ignored. Relative paths are relative to the file's folder.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gridnode/http/server.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::http {

enum class ClientAuth : std::uint8_t {
  no_client_cert,              // NoClientCert
  request_client_cert,         // RequestClientCert: asked for, not required, not verified
  require_any_client_cert,     // RequireAnyClientCert: required, not verified
  verify_client_cert_if_given, // VerifyClientCertIfGiven: optional, verified when sent
  require_and_verify_client_cert,  // RequireAndVerifyClientCert
};

struct WebTlsConfig {
  std::string cert_file;  // absolute after parsing
  std::string key_file;
  ClientAuth client_auth = ClientAuth::no_client_cert;
  std::string client_ca_file;  // required by the two verifying modes
  std::string min_version = "TLS12";  // TLS10, TLS11, TLS12, TLS13 (what we cannot do is refused)
};

struct WebConfig {
  std::string path;  // the file it came from
  std::optional<WebTlsConfig> tls;  // absent: plain HTTP
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash
  std::vector<Header> headers;                          // http_server_config.headers
};

// Reads and checks the file (unknown keys, bad values, missing files named with file:line).
[[nodiscard]] platform::Result<WebConfig> read_web_config(const std::string& path);

// Loads the certificate, key and client CA of `tls` into a server TlsContext for
// ServerOptions::tls (crypto::TlsContext::create_web_server).
[[nodiscard]] platform::Result<std::shared_ptr<crypto::TlsContext>> make_tls_context(
    const WebTlsConfig& tls);

// ServerOptions::authorize for the config's basic_auth_users (empty map: everyone). A request
// without credentials or with a wrong user or password gets 401 with
// `WWW-Authenticate: Basic realm="<realm>"` and a warning log line (at most 5 per 10 s) naming
// the user and the client (Request::remote), never the password. bcrypt is checked with
// libxcrypt's crypt_r; an unknown user is checked against a dummy hash (exporter-toolkit's), so
// that timing does not tell which users exist. The SHA-256 of (user, password, hash) of the
// last 64 successes and, apart, of the last 64 failures is remembered, so that a scrape every
// second does not pay bcrypt's cost each time. At most 10 uncached checks a second run (each
// is tens of milliseconds on the caller's loop); beyond that a request gets 429 with
// Retry-After: 1, unchecked. Single-threaded, like the server that calls it.
std::function<bool(const Request&, Response&)> make_basic_auth(
    std::map<std::string, std::string> users, std::string component,
    std::string realm = "gridnode");

}  // namespace gridnode::http
