#pragma once

// Mutual TLS over Asio for the uplink (client) and the collector (server): mbedTLS 2.28 fed
// through its BIO callbacks from our own buffers, every MBEDTLS_ERR_SSL_WANT_READ turned into
// the next asynchronous socket read. No blocking call, no thread: everything runs on the
// socket's executor. Not included by crypto.hpp (it pulls in Asio).
//
// What is accepted, on both sides: TLS 1.2 only; ECDHE-ECDSA with an AEAD cipher only
// (AES-128-GCM-SHA256, AES-256-GCM-SHA384, CHACHA20-POLY1305-SHA256); the P-256 curve only;
// both peers present a certificate chaining to the grid CA (P-256 keys, SHA-2 signatures);
// no renegotiation, no session resumption, never a plaintext fallback (anything that is not
// TLS is a handshake error, never data).

// A standard header before any Asio header, kept there against include sorting: Asio 1.22
// chooses between aligned_alloc and operator new for its handler memory from a libstdc++ macro
// (_GLIBCXX_HAVE_ALIGNED_ALLOC) that only a standard header defines, so a file whose first
// include is Asio would allocate handlers one way and free them the other (an ODR violation
// that ASan reports as alloc-dealloc-mismatch).
// clang-format off
#include <cstddef>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
// clang-format on
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gridnode/crypto/keys.hpp"
#include "gridnode/crypto/sha256.hpp"
#include "gridnode/crypto/x509.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::crypto {

// Aggregate-initialise with designated initializers; ca, cert and key have no empty state.
// (The `{}` initializers keep g++ 12's -Wmissing-field-initializers quiet for omitted fields.)
struct TlsOptions {
  bool server = false;
  Certificate ca;    // the grid CA: the only trust anchor
  Certificate cert;  // our own certificate, issued by `ca` ...
  PrivateKey key;    // ... and its key (checked to match at create())
  // Client only, required: the name the collector's certificate must carry. A DNS name is
  // matched by mbedTLS against the subjectAltName dNSNames (the CN only when there is no SAN)
  // and sent as SNI; an IP literal ("10.0.0.5", "::1", "[::1]") must equal one of the
  // certificate's subjectAltName iPAddress entries (never the CN) and is not sent as SNI.
  std::string server_name{};
  // Client only: SHA-256 of the server certificate's SubjectPublicKeyInfo DER, as
  // `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum` prints it.
  // Checked with the certificate chain, before our certificate and Finished are sent; a
  // different key fails the handshake.
  std::optional<Digest> pinned_server_key{};
  // From async_handshake() to its handler, including the TCP exchanges.
  std::chrono::milliseconds handshake_timeout{10000};
  // async_shutdown(): how long close_notify may take to leave and the peer to answer it.
  std::chrono::milliseconds shutdown_timeout{2000};
  // TLS ALPN (RFC 7301) protocol names, most preferred first; empty: no ALPN extension. A client
  // offers them; a server picks the first of its own names that the client offers, ignores a
  // client that offers none (an older peer), but refuses one that offers only names it does not
  // list (no_application_protocol alert). TlsStream::alpn_protocol() says what was agreed.
  std::vector<std::string> alpn{};
};

// The agent's web endpoint (exporter-toolkit's tls_server_config, for Prometheus and curl):
// a TLS server that is none of the grid's business. Separate from TlsOptions, which stays the
// grid's locked-down mTLS; the same TlsContext and TlsStream types carry it.
//
// What it accepts: TLS 1.2 only (mbedTLS 2.28 has no TLS 1.3 server); ECDHE key exchange with
// an AEAD cipher, for an RSA or an ECDSA certificate: ECDHE-{ECDSA,RSA}-WITH-{AES-128-GCM-SHA256,
// AES-256-GCM-SHA384,CHACHA20-POLY1305-SHA256}, which Go's crypto/tls (Prometheus) offers by
// default; groups X25519, P-256, P-384, P-521; no renegotiation, no session resumption.
// Client certificates are checked with mbedTLS's default profile (SHA-2, RSA >= 2048 bits,
// the NIST and Brainpool curves).

// exporter-toolkit's client_auth_type values, with Go's crypto/tls meaning.
enum class WebClientAuth : std::uint8_t {
  no_client_cert,                  // NoClientCert: none asked for
  request_client_cert,             // RequestClientCert: asked for, optional, not verified
  require_any_client_cert,         // RequireAnyClientCert: required, not verified
  verify_client_cert_if_given,     // VerifyClientCertIfGiven: optional, verified when sent
  require_and_verify_client_cert,  // RequireAndVerifyClientCert: required and verified
};

// exporter-toolkit's name of a mode ("RequireAndVerifyClientCert"), for messages.
const char* client_auth_name(WebClientAuth mode);

// exporter-toolkit's min_version values. mbedTLS 2.28 speaks TLS 1.2 only: tls10 and tls11 are
// floors that 1.2 meets (connections are 1.2), tls13 cannot be met and create_web_server
// refuses it.
enum class WebTlsVersion : std::uint8_t { tls10, tls11, tls12, tls13 };

struct WebServerTlsOptions {
  std::string cert_chain_pem;  // our certificate first, then its intermediates (PEM)
  std::string key_pem;         // its key, unencrypted PEM: PKCS#1 RSA, SEC1 EC or PKCS#8
  WebClientAuth client_auth = WebClientAuth::no_client_cert;
  // The CAs a client certificate must chain to (PEM, one or more); required by the two
  // verifying modes, optional for the others (then its names go in the CertificateRequest).
  std::string client_ca_pem{};
  // How messages name the client CA, e.g. "client_ca_file /etc/gridnode/ca.crt".
  std::string client_ca_name{"the client CA"};
  WebTlsVersion min_version = WebTlsVersion::tls12;
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds shutdown_timeout{2000};
};

// The mbedtls_ssl_config with the CA, our certificate and key, and a CTR-DRBG: one per server
// or per client endpoint, shared by its streams (hold it by shared_ptr; each stream keeps
// it alive). Immutable after create(). Its streams must all run on one thread (the agent's and
// the collector's single io_context): the DRBG is locked, but nothing else here is promised
// for several threads.
class TlsContext {
 public:
  // Fails (invalid_argument) when `key` does not belong to `cert`, or a client has no
  // server_name; an mbedTLS error otherwise (only on a broken host: entropy, allocation).
  // A client certificate from another CA is not refused here: the peer refuses it.
  [[nodiscard]] static platform::Result<std::shared_ptr<TlsContext>> create(TlsOptions options);

  // A server for the web endpoint. Fails (invalid_argument) with the reason named when the
  // chain or the key cannot be parsed, the key is encrypted or does not belong to the first
  // certificate, a verifying mode has no client CA, or min_version is tls13.
  //
  // Its streams check the client as `client_auth` says, during the handshake (a refused client
  // never gets our Finished and gets a bad_certificate alert); the handshake error names why:
  // "the client sent no certificate (client_auth_type RequireAnyClientCert)", "the client's
  // certificate was refused: not issued by client_ca_file F (<mbedTLS's reasons>)".
  // TlsStream::peer_certificate() stays nullopt for a client certificate that is not P-256;
  // peer_common_name() reads any.
  [[nodiscard]] static platform::Result<std::shared_ptr<TlsContext>> create_web_server(
      WebServerTlsOptions options);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // The grid options of create(); a web context (create_web_server) has none: calling this on
  // one aborts. is_web() tells them apart.
  const TlsOptions& options() const;
  bool is_web() const;

  struct Impl;  // crypto/src/tls_internal.hpp

 private:
  friend class TlsStream;
  explicit TlsContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One TLS connection over a connected TCP socket.
//
// Every handler runs on the socket's executor, never inside the call that started its
// operation, exactly once: with the result, or with an error when the stream fails or is
// closed (code asio::error::operation_aborted after close(), async_shutdown() or the
// destructor: a normal stop). At most one handshake, one read and one write may be pending at
// a time (read and write together are fine); a second of a kind fails at once with
// operation_in_progress. Any error other than a peer's close_notify is final: the stream is
// then dead and every later operation fails with that error.
//
// Idle timeouts are the caller's business: keep a timer and close() the stream when it fires.
//
// Not copyable, not movable (hold it by unique_ptr or shared_ptr). Destroying it is close().
// The state the pending socket operations need lives in a shared block that they keep alive, so
// destroying the stream with operations pending is safe; their handlers still run (aborted).
// A pending handler is held by the stream until it runs: a handler that owns the stream's owner
// (a session capturing `self`) keeps both alive, as in Asio's examples, so close() streams
// before destroying the io_context (SIGTERM path), or such a pair leaks.
class TlsStream {
 public:
  // `socket` is connected; `ctx` says which side we are.
  TlsStream(std::shared_ptr<TlsContext> ctx, asio::ip::tcp::socket socket);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Runs the handshake, checks the peer's certificate (chain to the CA, validity, and on a
  // client the server name and pinned key) and completes once our last flight is on the
  // socket. Enforces handshake_timeout itself (errc::timed_out). A failure's context reads
  // "TLS handshake with 127.0.0.1:4443 failed: <why>", where <why> gives
  // mbedtls_x509_crt_verify_info's reasons, the alert the peer sent, or "the peer does not
  // speak TLS"; its code is mbedTLS's (mbedtls_category()), or errc::timed_out /
  // errc::connection_reset (peer closed mid-handshake) / the socket's error. On failure our
  // alert is sent and the socket closed (within shutdown_timeout).
  void async_handshake(std::function<void(platform::Result<void>)> handler);

  // Reads at least one byte of application data into `buf` (non-empty; kept alive by the
  // caller until the handler runs). The peer closing fails it with errc::connection_reset,
  // context "... closed by peer" (after close_notify) or "... closed by peer without
  // close_notify (truncated)"; after close_notify the write side still works.
  void async_read_some(asio::mutable_buffer buf,
                       std::function<void(platform::Result<std::size_t>)> handler);

  // Writes all of `buf` (kept alive by the caller until the handler runs). Success means every
  // record is in the kernel's socket buffer, as for asio::async_write on a plain socket.
  void async_write(asio::const_buffer buf, std::function<void(platform::Result<void>)> handler);

  // Orderly close: pending reads and writes end (operation_aborted), close_notify follows what
  // is already queued, the send side is shut down, input is discarded until the peer closes
  // too, then the socket is closed and `handler` runs. Bounded by shutdown_timeout. Without a
  // completed handshake it just closes.
  void async_shutdown(std::function<void()> handler);

  // Immediate: closes the socket; every pending handler runs with operation_aborted.
  void close();

  // After a successful handshake (also after close()): the peer's verified certificate, a copy
  // made on the first call (about 2 ms: Certificate precomputes its key's tables; nullopt
  // before the handshake), and its subject's first CN, read without that copy ("" before).
  const std::optional<Certificate>& peer_certificate() const;
  std::string peer_common_name() const;
  // "127.0.0.1:4443", "[::1]:4443": the remote endpoint when the stream was made.
  const std::string& remote_endpoint_text() const;
  // After the handshake: the negotiated suite, e.g. "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256".
  std::string ciphersuite() const;
  // After the handshake: the ALPN protocol both sides agreed on, "" when none was (either side
  // configured none, or the peer ignored the extension).
  std::string alpn_protocol() const;

  asio::ip::tcp::socket& socket();

  struct Impl;  // crypto/src/tls_stream.cpp

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace gridnode::crypto
