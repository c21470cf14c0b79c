// One TLS connection driven from Asio. mbedTLS never touches the socket: its BIO callbacks read
// from `rbuf_` (filled by one async_read_some at a time) and append to `out_` (sent by one
// async_write at a time). MBEDTLS_ERR_SSL_WANT_READ from the recv callback means "rbuf_ is
// empty": we start a socket read and call mbedTLS again when it lands, which is the
// non-blocking contract of ssl_client1.c's loop, event-driven. The send callback always
// accepts, so mbedTLS never returns WANT_WRITE; what bounds `out_` is that a write encrypts at
// most kOutHighWater bytes before waiting for the socket.
//
// Every event (bytes read, bytes written, a timer, a new operation) calls pump(), which moves
// each pending operation as far as it can go. User handlers are always posted, never called
// from pump(), so nothing re-enters it.

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <algorithm>
#include <array>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "gridnode/crypto/tls.hpp"
#include "internal.hpp"
#include "tls_internal.hpp"

namespace gridnode::crypto {
namespace {

// One full record per socket read: 16 KiB of plaintext, the 5-byte header, the explicit nonce
// and the tag, with room to spare.
constexpr std::size_t kReadChunk = 17 * 1024;
// Ciphertext a write may queue before waiting for the socket: four full records, so a large
// write costs one system call per 64 KiB rather than per record.
constexpr std::size_t kOutHighWater = 64 * 1024;

std::string endpoint_text(const asio::ip::tcp::socket& socket) {
  std::error_code ec;
  asio::ip::tcp::endpoint ep = socket.remote_endpoint(ec);
  if (ec) {
    return "an unconnected socket";
  }
  const std::string port = std::to_string(ep.port());
  if (ep.address().is_v6()) {
    return "[" + ep.address().to_string() + "]:" + port;
  }
  return ep.address().to_string() + ":" + port;
}


struct AlertName {
  unsigned char code;
  const char* name;
};

// RFC 5246 §7.2's names, for the alerts a peer refusing us is likely to send.
constexpr AlertName kAlertNames[] = {
    {MBEDTLS_SSL_ALERT_MSG_UNEXPECTED_MESSAGE, "unexpected_message"},
    {MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC, "bad_record_mac"},
    {MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE, "handshake_failure"},
    {MBEDTLS_SSL_ALERT_MSG_NO_CERT, "no_certificate"},
    {MBEDTLS_SSL_ALERT_MSG_BAD_CERT, "bad_certificate"},
    {MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT, "unsupported_certificate"},
    {MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED, "certificate_revoked"},
    {MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED, "certificate_expired"},
    {MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN, "certificate_unknown"},
    {MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER, "illegal_parameter"},
    {MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA, "unknown_ca"},
    {MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED, "access_denied"},
    {MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR, "decode_error"},
    {MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR, "decrypt_error"},
    {MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION, "protocol_version"},
    {MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY, "insufficient_security"},
    {MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR, "internal_error"},
    {MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME, "unrecognized_name"},
};

// "unknown_ca (48)", or "number 99" for an alert not in the table.
std::string alert_text(unsigned char alert) {
  const std::string code = std::to_string(alert);
  for (const AlertName& a : kAlertNames) {
    if (a.code == alert) {
      return std::string(a.name) + " (" + code + ")";
    }
  }
  return "number " + code;
}

platform::Error aborted(const std::string& what) {
  return platform::Error{asio::error::operation_aborted, what};
}

}  // namespace

struct TlsStream::Impl : std::enable_shared_from_this<Impl> {
  enum class Phase { kNew, kHandshaking, kOpen, kClosing, kClosed };

  Impl(std::shared_ptr<TlsContext> ctx, asio::ip::tcp::socket socket);
  ~Impl() { mbedtls_ssl_free(&ssl_); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void start_handshake(std::function<void(platform::Result<void>)> handler);
  void start_read(asio::mutable_buffer buf,
                  std::function<void(platform::Result<std::size_t>)> handler);
  void start_write(asio::const_buffer buf, std::function<void(platform::Result<void>)> handler);
  void start_shutdown(std::function<void()> handler);
  void close();

  // The story of one event: move every pending operation on, then feed the socket.
  void pump();
  void do_handshake();
  void do_read();
  void do_write();
  void do_flush();   // out_ to the socket, one async_write at a time
  void do_fill();    // one socket read into rbuf_, when mbedTLS wants more
  void do_linger();  // after a failure or close_notify: flush, FIN, drain, close
  void begin_linger();
  void finish_close();  // socket closed, every pending handler told
  void on_read(const std::error_code& ec, std::size_t n);
  void on_written(const std::error_code& ec);
  void on_handshake_timeout();

  // Ends the stream with `error`: every pending operation gets it. `linger` sends what is queued
  // (our alert) and waits for the peer's FIN, so the alert is not lost to a TCP reset.
  void fail(platform::Error error, bool linger);
  void complete_all(const platform::Error& error);
  platform::Error handshake_error(int rc);
  platform::Error stream_error(int rc, const char* what);
  platform::Result<void> capture_peer();
  // mbedtls_ssl_handshake(), or for a web server its steps with check_web_client() after the
  // client's Certificate message (0, or the refusal's mbedTLS code with our alert queued).
  int run_handshake();
  int check_web_client();
  // The verified peer certificate, kept by mbedTLS for the session; null before the handshake.
  const mbedtls_x509_crt* peer_crt() const;

  template <class T>
  void post(std::function<void(platform::Result<T>)>& slot, platform::Result<T> result) {
    auto handler = std::move(slot);
    slot = nullptr;
    asio::post(socket_.get_executor(),
               [handler = std::move(handler), result = std::move(result)]() mutable {
                 handler(std::move(result));
               });
  }

  static int bio_send(void* self, const unsigned char* buf, std::size_t len);
  static int bio_recv(void* self, unsigned char* buf, std::size_t len);
  static int verify_server(void* self, mbedtls_x509_crt* crt, int depth, std::uint32_t* flags);

  // Declared before ssl_, which points at its config: freed after it.
  std::shared_ptr<TlsContext> ctx_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer handshake_timer_;
  asio::steady_timer linger_timer_;
  std::string peer_;
  mbedtls_ssl_context ssl_;
  std::optional<platform::Error> setup_error_;

  Phase phase_ = Phase::kNew;
  bool handshake_done_ = false;  // mbedTLS finished; our last flight may still be queued
  bool established_ = false;     // the handshake handler got success
  bool peer_closed_ = false;     // close_notify received: reads fail, writes still go
  bool fin_sent_ = false;
  std::optional<platform::Error> failed_;  // once set, every new operation fails with it
  std::string refusal_;  // why verify_server or check_web_client refused, for the message
  bool client_cert_checked_ = false;  // web server: check_web_client() has run
  int first_byte_ = -1;                    // of the peer's stream: 0x16 for a TLS handshake

  std::function<void(platform::Result<void>)> handshake_handler_;
  std::function<void(platform::Result<std::size_t>)> read_handler_;
  asio::mutable_buffer read_buf_;
  std::function<void(platform::Result<void>)> write_handler_;
  asio::const_buffer write_buf_;
  std::size_t write_done_ = 0;
  std::function<void()> shutdown_handler_;

  std::vector<unsigned char> rbuf_ = std::vector<unsigned char>(kReadChunk);
  std::size_t rbeg_ = 0;
  std::size_t rend_ = 0;
  bool reading_ = false;
  bool eof_ = false;
  std::error_code read_ec_;
  std::vector<unsigned char> out_;   // ciphertext mbedTLS produced, not yet handed to the socket
  std::vector<unsigned char> wbuf_;  // ciphertext in the async_write in flight
  bool writing_ = false;
  std::error_code write_ec_;

  // Built on the first peer_certificate() call: Certificate::from_der precomputes the key's
  // verification tables, about 2 ms, a quarter of a whole handshake, which a collector that only
  // wants the CN should not pay for every connection.
  mutable std::optional<Certificate> peer_cert_;
  mutable bool peer_cert_built_ = false;
};

TlsStream::Impl::Impl(std::shared_ptr<TlsContext> ctx, asio::ip::tcp::socket socket)
    : ctx_(std::move(ctx)),
      socket_(std::move(socket)),
      handshake_timer_(socket_.get_executor()),
      linger_timer_(socket_.get_executor()),
      peer_(endpoint_text(socket_)) {
  mbedtls_ssl_init(&ssl_);
  if (ctx_ == nullptr) {
    setup_error_ = platform::Error{std::make_error_code(std::errc::invalid_argument),
                                   "TLS stream with " + peer_ + ": no TlsContext"};
    return;
  }
  const TlsContext::Impl& c = *ctx_->impl_;
  if (int rc = mbedtls_ssl_setup(&ssl_, &c.conf); rc != 0) {
    setup_error_ = mbedtls_error(rc, "TLS stream with " + peer_ + ": mbedtls_ssl_setup");
    return;
  }
  mbedtls_ssl_set_bio(&ssl_, this, &Impl::bio_send, &Impl::bio_recv, nullptr);
  if (!c.server()) {
    if (!c.server_ip) {
      // SNI, and mbedTLS's own dNSName (else CN) match during verification.
      if (int rc = mbedtls_ssl_set_hostname(&ssl_, c.options->server_name.c_str()); rc != 0) {
        setup_error_ =
            mbedtls_error(rc, "TLS stream with " + peer_ + ": mbedtls_ssl_set_hostname \"" +
                                  c.options->server_name + "\"");
        return;
      }
    }
    if (c.server_ip || c.options->pinned_server_key) {
      mbedtls_ssl_set_verify(&ssl_, &Impl::verify_server, this);
    }
  }
}

int TlsStream::Impl::bio_send(void* p, const unsigned char* buf, std::size_t len) {
  auto* self = static_cast<Impl*>(p);
  if (self->write_ec_ || self->phase_ == Phase::kClosed) {
    return MBEDTLS_ERR_NET_SEND_FAILED;
  }
  self->out_.insert(self->out_.end(), buf, buf + len);
  return static_cast<int>(len);
}

int TlsStream::Impl::bio_recv(void* p, unsigned char* buf, std::size_t len) {
  auto* self = static_cast<Impl*>(p);
  if (self->rbeg_ < self->rend_) {
    std::size_t n = std::min(len, self->rend_ - self->rbeg_);
    std::memcpy(buf, self->rbuf_.data() + self->rbeg_, n);
    if (self->first_byte_ < 0 && n > 0) {
      self->first_byte_ = buf[0];
    }
    self->rbeg_ += n;
    return static_cast<int>(n);
  }
  if (self->eof_) {
    return 0;  // mbedTLS: MBEDTLS_ERR_SSL_CONN_EOF
  }
  if (self->read_ec_) {
    return MBEDTLS_ERR_NET_RECV_FAILED;
  }
  return MBEDTLS_ERR_SSL_WANT_READ;
}

// Client, leaf certificate: the checks mbedTLS 2.28 cannot make. A refusal sets a flag, so
// mbedTLS fails the handshake with MBEDTLS_ERR_X509_CERT_VERIFY_FAILED and sends its alert
// before our certificate or Finished leave.
int TlsStream::Impl::verify_server(void* p, mbedtls_x509_crt* crt, int depth,
                                   std::uint32_t* flags) {
  auto* self = static_cast<Impl*>(p);
  if (depth != 0) {
    return 0;
  }
  const TlsContext::Impl& c = *self->ctx_->impl_;
  if (c.server_ip && !san_has_ip_address(*crt, *c.server_ip)) {
    *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    self->refusal_ = "the IP address " + c.options->server_name +
                     " is not among its subjectAltName iPAddress entries";
  }
  if (c.options->pinned_server_key) {
    Digest spki = sha256(std::span<const std::uint8_t>(crt->pk_raw.p, crt->pk_raw.len));
    if (spki != *c.options->pinned_server_key) {
      *flags |= MBEDTLS_X509_BADCERT_OTHER;
      self->refusal_ += (self->refusal_.empty() ? "" : "; ") + std::string("its public key ") +
                        to_hex(spki) + " is not the pinned key " +
                        to_hex(*c.options->pinned_server_key);
    }
  }
  return 0;
}

void TlsStream::Impl::start_handshake(std::function<void(platform::Result<void>)> handler) {
  if (failed_) {
    post<void>(handler, tl::unexpected(*failed_));
    return;
  }
  if (setup_error_) {
    post<void>(handler, tl::unexpected(*setup_error_));
    return;
  }
  if (phase_ != Phase::kNew) {
    post<void>(handler, platform::fail(std::errc::operation_in_progress,
                                       "TLS stream with " + peer_ + ": handshake already started"));
    return;
  }
  phase_ = Phase::kHandshaking;
  handshake_handler_ = std::move(handler);
  handshake_timer_.expires_after(ctx_->impl_->handshake_timeout());
  handshake_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
    if (!ec) {
      self->on_handshake_timeout();
    }
  });
  pump();
}

void TlsStream::Impl::start_read(asio::mutable_buffer buf,
                                 std::function<void(platform::Result<std::size_t>)> handler) {
  if (failed_) {
    post<std::size_t>(handler, tl::unexpected(*failed_));
    return;
  }
  if (phase_ != Phase::kOpen) {
    post<std::size_t>(handler, platform::fail(std::errc::not_connected,
                                              "TLS stream with " + peer_ +
                                                  ": read before the handshake completed"));
    return;
  }
  if (read_handler_) {
    post<std::size_t>(handler,
                      platform::fail(std::errc::operation_in_progress,
                                     "TLS stream with " + peer_ + ": a read is already pending"));
    return;
  }
  if (buf.size() == 0) {
    post<std::size_t>(handler,
                      platform::fail(std::errc::invalid_argument,
                                     "TLS stream with " + peer_ + ": read into an empty buffer"));
    return;
  }
  if (peer_closed_) {
    post<std::size_t>(handler, platform::fail(std::errc::connection_reset,
                                              "TLS stream with " + peer_ + ": closed by peer"));
    return;
  }
  read_handler_ = std::move(handler);
  read_buf_ = buf;
  pump();
}

void TlsStream::Impl::start_write(asio::const_buffer buf,
                                  std::function<void(platform::Result<void>)> handler) {
  if (failed_) {
    post<void>(handler, tl::unexpected(*failed_));
    return;
  }
  if (phase_ != Phase::kOpen) {
    post<void>(handler, platform::fail(
                            std::errc::not_connected,
                            "TLS stream with " + peer_ + ": write before the handshake completed"));
    return;
  }
  if (write_handler_) {
    post<void>(handler,
               platform::fail(std::errc::operation_in_progress,
                              "TLS stream with " + peer_ + ": a write is already pending"));
    return;
  }
  if (buf.size() == 0) {
    post<void>(handler, {});
    return;
  }
  write_handler_ = std::move(handler);
  write_buf_ = buf;
  write_done_ = 0;
  pump();
}

void TlsStream::Impl::start_shutdown(std::function<void()> handler) {
  if (phase_ == Phase::kClosed || shutdown_handler_) {
    asio::post(socket_.get_executor(), std::move(handler));
    return;
  }
  shutdown_handler_ = std::move(handler);
  if (phase_ == Phase::kClosing) {
    return;  // already on its way out; finish_close() runs the handler
  }
  const bool open = phase_ == Phase::kOpen && !failed_;
  if (!failed_) {
    failed_ = aborted("TLS stream with " + peer_ + ": shut down");
  }
  complete_all(*failed_);
  handshake_timer_.cancel();
  if (!open) {
    finish_close();
    return;
  }
  // Queued after any records already in out_; a failure here only loses the courtesy.
  (void)mbedtls_ssl_close_notify(&ssl_);
  begin_linger();
}

void TlsStream::Impl::close() {
  if (phase_ == Phase::kClosed) {
    return;
  }
  if (!failed_) {
    failed_ = aborted("TLS stream with " + peer_ + ": closed");
  }
  finish_close();
}

void TlsStream::Impl::pump() {
  if (phase_ == Phase::kHandshaking) {
    do_handshake();
  } else if (phase_ == Phase::kOpen) {
    do_read();
    if (phase_ == Phase::kOpen) {
      do_write();
    }
  } else if (phase_ == Phase::kClosing) {
    do_linger();
    return;
  }
  if (phase_ == Phase::kHandshaking || phase_ == Phase::kOpen) {
    do_flush();
  }
}

void TlsStream::Impl::do_handshake() {
  if (!handshake_done_) {
    int rc = run_handshake();
    if (rc == MBEDTLS_ERR_SSL_WANT_READ) {
      do_fill();
      return;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
      return;  // not with our send callback; pump() flushes anyway
    }
    if (rc != 0) {
      fail(handshake_error(rc), true);
      return;
    }
    handshake_done_ = true;
    if (auto ok = capture_peer(); !ok) {
      fail(ok.error(), true);
      return;
    }
  }
  if (write_ec_) {
    fail(platform::Error{write_ec_, "TLS handshake with " + peer_ + " failed: send"}, false);
    return;
  }
  if (!out_.empty() || writing_) {
    return;  // our last flight goes first, so the handler may close() without losing it
  }
  phase_ = Phase::kOpen;
  established_ = true;
  handshake_timer_.cancel();
  post<void>(handshake_handler_, {});
}

int TlsStream::Impl::run_handshake() {
  const TlsContext::Impl& c = *ctx_->impl_;
  if (c.web == nullptr) {
    return mbedtls_ssl_handshake(&ssl_);
  }
  // The web server goes step by step, as mbedtls_ssl_handshake() would, to look at the
  // client's Certificate message as soon as it is parsed: mbedTLS's OPTIONAL authmode takes
  // anything, and RequireAnyClientCert / VerifyClientCertIfGiven refuse some of it.
  while (ssl_.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
    int rc = mbedtls_ssl_handshake_step(&ssl_);
    if (rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE) {
      // RequireAndVerifyClientCert: mbedTLS refuses without an alert; send Go's (bad_certificate).
      refusal_ = std::string("the client sent no certificate (client_auth_type ") +
                 client_auth_name(c.web->client_auth) + ")";
      mbedtls_ssl_send_alert_message(&ssl_, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                     MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
      return rc;
    }
    if (rc != 0) {
      return rc;
    }
    if (!client_cert_checked_ && ssl_.state > MBEDTLS_SSL_CLIENT_CERTIFICATE &&
        ssl_.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
      client_cert_checked_ = true;
      if (int refused = check_web_client(); refused != 0) {
        return refused;
      }
    }
  }
  return 0;
}

int TlsStream::Impl::check_web_client() {
  const WebServerState& w = *ctx_->impl_->web;
  const mbedtls_x509_crt* crt =
      ssl_.session_negotiate != nullptr ? ssl_.session_negotiate->peer_cert : nullptr;
  const std::uint32_t flags =
      ssl_.session_negotiate != nullptr ? ssl_.session_negotiate->verify_result : 0;
  int rc = 0;
  if (w.client_auth == WebClientAuth::require_any_client_cert && crt == nullptr) {
    refusal_ = "the client sent no certificate (client_auth_type RequireAnyClientCert)";
    rc = MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE;
  } else if (w.client_auth == WebClientAuth::verify_client_cert_if_given && crt != nullptr &&
             flags != 0) {
    rc = MBEDTLS_ERR_X509_CERT_VERIFY_FAILED;
  }
  if (rc != 0) {
    mbedtls_ssl_send_alert_message(&ssl_, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                   MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
  }
  return rc;
}

platform::Result<void> TlsStream::Impl::capture_peer() {
  if (ctx_->impl_->web != nullptr) {
    return {};  // run_handshake() and mbedTLS's authmode checked what the mode asks
  }
  if (mbedtls_ssl_get_peer_cert(&ssl_) == nullptr) {
    // VERIFY_REQUIRED on both sides makes this unreachable; refuse rather than assume.
    return tl::unexpected(mbedtls_error(
        MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED,
        "TLS handshake with " + peer_ + " failed: the peer presented no certificate"));
  }
  return {};
}

const mbedtls_x509_crt* TlsStream::Impl::peer_crt() const {
  return established_ ? mbedtls_ssl_get_peer_cert(&ssl_) : nullptr;
}

platform::Error TlsStream::Impl::handshake_error(int rc) {
  const std::string head = "TLS handshake with " + peer_ + " failed";
  if (first_byte_ >= 0 && first_byte_ != 0x16 && first_byte_ != 0x15) {
    // A TLS peer's first record is a handshake (0x16) or an alert (0x15): "G" of "GET /" or a
    // gridnode frame in clear never gets to be data.
    char what[80];
    if (first_byte_ >= 0x20 && first_byte_ < 0x7f) {
      std::snprintf(what, sizeof what,
                    "the peer does not speak TLS (its first byte is 0x%02x '%c')", first_byte_,
                    first_byte_);
    } else {
      std::snprintf(what, sizeof what, "the peer does not speak TLS (its first byte is 0x%02x)",
                    first_byte_);
    }
    return mbedtls_error(rc, head + ": " + what);
  }
  if (const WebServerState* w = ctx_->impl_->web.get(); w != nullptr) {
    if (rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE && !refusal_.empty()) {
      return mbedtls_error(rc, head + ": " + refusal_);
    }
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
      const std::uint32_t flags = mbedtls_ssl_get_verify_result(&ssl_);
      std::string why = verify_reasons(flags);
      if ((flags & (MBEDTLS_X509_BADCERT_NOT_TRUSTED)) != 0) {
        why = "not issued by " + w->client_ca_name + " (" + why + ")";
      }
      return mbedtls_error(rc, head + ": the client's certificate was refused (client_auth_type " +
                                   client_auth_name(w->client_auth) + "): " + why);
    }
  }
  if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
    const TlsContext::Impl& c = *ctx_->impl_;
    std::string whose = c.server()
                            ? "the client's certificate"
                            : "the server's certificate for \"" + c.options->server_name + "\"";
    std::string why = verify_reasons(mbedtls_ssl_get_verify_result(&ssl_));
    if (!refusal_.empty()) {
      why = refusal_ + " (" + why + ")";
    }
    return mbedtls_error(rc, head + ": " + whose + " was refused: " + why);
  }
  if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && ssl_.in_msg != nullptr) {
    return mbedtls_error(rc,
                         head + ": the peer refused us with alert " + alert_text(ssl_.in_msg[1]));
  }
  if (rc == MBEDTLS_ERR_SSL_CONN_EOF || (rc == MBEDTLS_ERR_NET_RECV_FAILED && !read_ec_)) {
    return platform::Error{std::make_error_code(std::errc::connection_reset),
                           head + ": connection closed by peer"};
  }
  if (rc == MBEDTLS_ERR_NET_RECV_FAILED) {
    return platform::Error{read_ec_, head + ": receive"};
  }
  if (rc == MBEDTLS_ERR_NET_SEND_FAILED && write_ec_) {
    return platform::Error{write_ec_, head + ": send"};
  }
  return mbedtls_error(rc, head);
}

platform::Error TlsStream::Impl::stream_error(int rc, const char* what) {
  const std::string head = "TLS stream with " + peer_;
  if (rc == 0 || rc == MBEDTLS_ERR_SSL_CONN_EOF) {
    return platform::Error{std::make_error_code(std::errc::connection_reset),
                           head + ": closed by peer without close_notify (truncated)"};
  }
  if (rc == MBEDTLS_ERR_NET_RECV_FAILED && read_ec_) {
    return platform::Error{read_ec_, head + ": receive"};
  }
  if (rc == MBEDTLS_ERR_NET_SEND_FAILED && write_ec_) {
    return platform::Error{write_ec_, head + ": send"};
  }
  if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && ssl_.in_msg != nullptr) {
    return mbedtls_error(rc, head + ": alert " + alert_text(ssl_.in_msg[1]));
  }
  return mbedtls_error(rc, head + ": " + what);
}

void TlsStream::Impl::do_read() {
  if (!read_handler_) {
    return;
  }
  int rc = mbedtls_ssl_read(&ssl_, static_cast<unsigned char*>(read_buf_.data()), read_buf_.size());
  if (rc > 0) {
    post<std::size_t>(read_handler_, static_cast<std::size_t>(rc));
    return;
  }
  if (rc == MBEDTLS_ERR_SSL_WANT_READ) {
    do_fill();
    return;
  }
  if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
    return;
  }
  if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
    peer_closed_ = true;
    post<std::size_t>(read_handler_,
                      platform::fail(std::errc::connection_reset,
                                     "TLS stream with " + peer_ + ": closed by peer"));
    return;
  }
  fail(stream_error(rc, "mbedtls_ssl_read"), rc != 0 && rc != MBEDTLS_ERR_SSL_CONN_EOF);
}

void TlsStream::Impl::do_write() {
  if (!write_handler_) {
    return;
  }
  if (write_ec_) {
    fail(platform::Error{write_ec_, "TLS stream with " + peer_ + ": send"}, false);
    return;
  }
  const auto* data = static_cast<const unsigned char*>(write_buf_.data());
  while (write_done_ < write_buf_.size() && out_.size() < kOutHighWater) {
    int rc = mbedtls_ssl_write(&ssl_, data + write_done_, write_buf_.size() - write_done_);
    if (rc > 0) {
      write_done_ += static_cast<std::size_t>(rc);
      continue;
    }
    if (rc == 0 || rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) {
      break;  // call again after the socket has taken what is queued
    }
    fail(stream_error(rc, "mbedtls_ssl_write"), true);
    return;
  }
  if (write_done_ == write_buf_.size() && out_.empty() && !writing_) {
    post<void>(write_handler_, {});
  }
}

void TlsStream::Impl::do_flush() {
  if (writing_ || out_.empty() || write_ec_) {
    return;
  }
  wbuf_.swap(out_);
  out_.clear();
  writing_ = true;
  asio::async_write(socket_, asio::buffer(wbuf_),
                    [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                      self->on_written(ec);
                    });
}

void TlsStream::Impl::do_fill() {
  if (reading_ || eof_ || read_ec_ || rbeg_ < rend_) {
    return;
  }
  rbeg_ = rend_ = 0;
  reading_ = true;
  socket_.async_read_some(asio::buffer(rbuf_),
                          [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
                            self->on_read(ec, n);
                          });
}

void TlsStream::Impl::on_read(const std::error_code& ec, std::size_t n) {
  reading_ = false;
  if (phase_ == Phase::kClosed) {
    return;
  }
  if (ec == asio::error::eof) {
    eof_ = true;
  } else if (ec) {
    read_ec_ = ec;
  } else {
    rend_ = n;
  }
  pump();
}

void TlsStream::Impl::on_written(const std::error_code& ec) {
  writing_ = false;
  wbuf_.clear();
  if (phase_ == Phase::kClosed) {
    return;
  }
  if (ec) {
    write_ec_ = ec;
  }
  pump();
}

void TlsStream::Impl::on_handshake_timeout() {
  if (phase_ != Phase::kHandshaking) {
    return;
  }
  // A silent peer gets no alert: nothing suggests it would read one.
  fail(platform::Error{std::make_error_code(std::errc::timed_out),
                       "TLS handshake with " + peer_ + " timed out after " +
                           std::to_string(ctx_->impl_->handshake_timeout().count()) + " ms"},
       false);
}

void TlsStream::Impl::complete_all(const platform::Error& error) {
  if (handshake_handler_) {
    post<void>(handshake_handler_, tl::unexpected(error));
  }
  if (read_handler_) {
    post<std::size_t>(read_handler_, tl::unexpected(error));
  }
  if (write_handler_) {
    post<void>(write_handler_, tl::unexpected(error));
  }
}

void TlsStream::Impl::fail(platform::Error error, bool linger) {
  if (!failed_) {
    failed_ = std::move(error);
  }
  complete_all(*failed_);
  handshake_timer_.cancel();
  if (linger && !write_ec_) {
    begin_linger();
  } else {
    finish_close();
  }
}

void TlsStream::Impl::begin_linger() {
  if (phase_ == Phase::kClosing || phase_ == Phase::kClosed) {
    return;
  }
  phase_ = Phase::kClosing;
  linger_timer_.expires_after(ctx_->impl_->shutdown_timeout());
  linger_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
    if (!ec) {
      self->finish_close();
    }
  });
  do_linger();
}

// Closing without losing the last words: a socket closed with unread input sends a TCP reset,
// and a reset can overtake our alert or close_notify, so the peer would see "connection reset"
// instead of why. Hence: send what is queued, then FIN, then read and discard until the peer
// closes too (or linger_timer_ fires).
void TlsStream::Impl::do_linger() {
  if (!write_ec_) {
    do_flush();
  }
  if (writing_ || (!out_.empty() && !write_ec_)) {
    return;
  }
  if (!fin_sent_) {
    fin_sent_ = true;
    std::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
  rbeg_ = rend_ = 0;
  if (eof_ || read_ec_) {
    finish_close();
    return;
  }
  do_fill();
}

void TlsStream::Impl::finish_close() {
  if (phase_ == Phase::kClosed) {
    return;
  }
  phase_ = Phase::kClosed;
  handshake_timer_.cancel();
  linger_timer_.cancel();
  std::error_code ignored;
  socket_.close(ignored);
  complete_all(failed_ ? *failed_ : aborted("TLS stream with " + peer_ + ": closed"));
  if (shutdown_handler_) {
    asio::post(socket_.get_executor(), std::move(shutdown_handler_));
    shutdown_handler_ = nullptr;
  }
}

TlsStream::TlsStream(std::shared_ptr<TlsContext> ctx, asio::ip::tcp::socket socket)
    : impl_(std::make_shared<Impl>(std::move(ctx), std::move(socket))) {}

TlsStream::~TlsStream() { impl_->close(); }

void TlsStream::async_handshake(std::function<void(platform::Result<void>)> handler) {
  impl_->start_handshake(std::move(handler));
}

void TlsStream::async_read_some(asio::mutable_buffer buf,
                                std::function<void(platform::Result<std::size_t>)> handler) {
  impl_->start_read(buf, std::move(handler));
}

void TlsStream::async_write(asio::const_buffer buf,
                            std::function<void(platform::Result<void>)> handler) {
  impl_->start_write(buf, std::move(handler));
}

void TlsStream::async_shutdown(std::function<void()> handler) {
  impl_->start_shutdown(std::move(handler));
}

void TlsStream::close() { impl_->close(); }

const std::optional<Certificate>& TlsStream::peer_certificate() const {
  if (!impl_->peer_cert_built_) {
    if (const mbedtls_x509_crt* crt = impl_->peer_crt(); crt != nullptr) {
      impl_->peer_cert_built_ = true;
      // Already verified against the profile (P-256), so this cannot fail in practice.
      auto cert = Certificate::from_der(std::span<const std::uint8_t>(crt->raw.p, crt->raw.len));
      if (cert) {
        impl_->peer_cert_.emplace(std::move(*cert));
      }
    }
  }
  return impl_->peer_cert_;
}

std::string TlsStream::peer_common_name() const {
  const mbedtls_x509_crt* crt = impl_->peer_crt();
  for (const mbedtls_x509_name* dn = crt != nullptr ? &crt->subject : nullptr; dn != nullptr;
       dn = dn->next) {
    if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &dn->oid) == 0) {
      return std::string(reinterpret_cast<const char*>(dn->val.p), dn->val.len);
    }
  }
  return {};
}

const std::string& TlsStream::remote_endpoint_text() const { return impl_->peer_; }

std::string TlsStream::ciphersuite() const {
  if (!impl_->established_) {
    return {};
  }
  const char* name = mbedtls_ssl_get_ciphersuite(&impl_->ssl_);
  return name != nullptr ? name : "";
}

std::string TlsStream::alpn_protocol() const {
  if (!impl_->established_) {
    return {};
  }
  const char* name = mbedtls_ssl_get_alpn_protocol(&impl_->ssl_);
  return name != nullptr ? name : "";
}

asio::ip::tcp::socket& TlsStream::socket() { return impl_->socket_; }

}  // namespace gridnode::crypto
