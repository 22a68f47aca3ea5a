#include "worker/tls/engine.hpp"

#include <openssl/err.h>

namespace molt::worker {

TlsEngine::TlsEngine(std::shared_ptr<const TlsContext> context)
    : context_(std::move(context)), ssl_(context_->newSsl()) {
  attachBuffers();
}

TlsEngine::TlsEngine(tls::SslPtr ssl) : ssl_(std::move(ssl)) {
  attachBuffers();
}

// OpenSSL drops the session of a connection freed without close_notify both ways (and marks it
// not resumable): most clients just close the socket, and that must not cost them their session.
// A connection that failed keeps that treatment.
TlsEngine::~TlsEngine() {
  if (ssl_ && phase_ != TlsPhase::Failed) {
    SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
}

void TlsEngine::attachBuffers() {
  if (!ssl_) return;
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (in_ == nullptr || out_ == nullptr) {
    BIO_free(in_);
    BIO_free(out_);
    ssl_.reset();
    return;
  }
  // An empty input buffer means "wait for more", not end of stream.
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_.get(), in_, out_);
}

void TlsEngine::setWaker(HandshakeWaker* waker) noexcept {
  if (ssl_) SSL_set_app_data(ssl_.get(), waker);
}

bool TlsEngine::feed(std::span<const char> ciphertext) noexcept {
  if (ciphertext.empty()) return true;
  return BIO_write(in_, ciphertext.data(), static_cast<int>(ciphertext.size())) ==
         static_cast<int>(ciphertext.size());
}

// The error queue is per thread and shared by every connection: it is emptied before each call
// so that SSL_get_error() judges only this one.
TlsStatus TlsEngine::handshake() noexcept {
  if (phase_ != TlsPhase::Handshaking) {
    return phase_ == TlsPhase::Failed ? TlsStatus::Failed : TlsStatus::Ok;
  }
  ERR_clear_error();
  int result = SSL_do_handshake(ssl_.get());
  if (result == 1) {
    phase_ = TlsPhase::Established;
    return TlsStatus::Ok;
  }
  return fail(result);
}

TlsResult TlsEngine::read(std::span<char> plaintext) noexcept {
  if (phase_ == TlsPhase::Handshaking) {
    if (TlsStatus status = handshake(); status != TlsStatus::Ok) return {status};
  }
  if (phase_ == TlsPhase::Failed) return {TlsStatus::Failed};
  if (phase_ == TlsPhase::Closed) return {TlsStatus::Closed};
  ERR_clear_error();
  std::size_t n = 0;
  int result = SSL_read_ex(ssl_.get(), plaintext.data(), plaintext.size(), &n);
  if (result == 1) return {TlsStatus::Ok, n};
  return {fail(result)};
}

TlsResult TlsEngine::write(std::span<const char> plaintext) noexcept {
  if (phase_ != TlsPhase::Established) {
    return {phase_ == TlsPhase::Handshaking ? TlsStatus::WantInput : TlsStatus::Failed};
  }
  if (plaintext.empty()) return {TlsStatus::Ok};
  ERR_clear_error();
  std::size_t n = 0;
  // The memory BIO grows, so OpenSSL takes all of it at once (no partial writes to retry).
  int result = SSL_write_ex(ssl_.get(), plaintext.data(), plaintext.size(), &n);
  if (result == 1) return {TlsStatus::Ok, n};
  return {fail(result)};
}

void TlsEngine::shutdown() noexcept {
  if (phase_ != TlsPhase::Established && phase_ != TlsPhase::Closed) return;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());
  if (phase_ == TlsPhase::Established) phase_ = TlsPhase::ShutdownSent;
}

TlsStatus TlsEngine::fail(int result) noexcept {
  switch (SSL_get_error(ssl_.get(), result)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
    // Suspended at the ClientHello for a fleet lookup: the waker drives it again.
    case SSL_ERROR_WANT_CLIENT_HELLO_CB:
      return TlsStatus::WantInput;
    case SSL_ERROR_ZERO_RETURN:
      phase_ = TlsPhase::Closed;
      return TlsStatus::Closed;
    default:
      phase_ = TlsPhase::Failed;
      try {
        error_ = tls::opensslError("TLS protocol error");
      } catch (...) {
      }
      return TlsStatus::Failed;
  }
}

std::size_t TlsEngine::pendingOutput() const noexcept {
  return out_ != nullptr ? BIO_ctrl_pending(out_) : 0;
}

std::size_t TlsEngine::takeOutput(std::span<char> out) noexcept {
  if (out_ == nullptr || out.empty()) return 0;
  int n = BIO_read(out_, out.data(), static_cast<int>(out.size()));
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

// A memory BIO keeps its largest buffer forever; an idle connection swaps in fresh, empty ones.
void TlsEngine::releaseBuffers() noexcept {
  if (!ssl_ || BIO_ctrl_pending(in_) != 0 || BIO_ctrl_pending(out_) != 0) return;
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    return;
  }
  BIO_set_mem_eof_return(in, -1);
  SSL_set_bio(ssl_.get(), in, out);  // frees the old pair
  in_ = in;
  out_ = out;
}

std::string_view TlsEngine::serverName() const {
  const char* name = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? name : "";
}

std::string_view TlsEngine::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl_.get(), &data, &length);
  return {reinterpret_cast<const char*>(data), length};
}

std::string_view TlsEngine::version() const {
  return SSL_get_version(ssl_.get());
}

bool TlsEngine::resumed() const {
  return SSL_session_reused(ssl_.get()) == 1;
}

}  // namespace molt::worker
