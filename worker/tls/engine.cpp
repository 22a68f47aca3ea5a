#include "worker/tls/engine.hpp"

#include <openssl/err.h>
#include <sys/socket.h>

#include <new>

namespace molt::worker {

TlsEngine::TlsEngine(BufferPool& pool, std::shared_ptr<const TlsContext> context)
    : context_(std::move(context)), buffers_(pool), ssl_(context_->newSsl()) {
  attachBuffers();
}

TlsEngine::TlsEngine(BufferPool& pool, tls::SslPtr ssl) : buffers_(pool), ssl_(std::move(ssl)) {
  attachBuffers();
}

TlsEngine::TlsEngine(BufferPool& pool, std::shared_ptr<const TlsContext> context,
                     tls::SslPtr established)
    : context_(std::move(context)), buffers_(pool) {
  adopt(std::move(established));
}

bool TlsEngine::quiescent() const noexcept {
  return ssl_ && phase_ == TlsPhase::Established && buffers_.input.size() == 0 &&
         buffers_.output.size() == 0 && SSL_has_pending(ssl_.get()) == 0;
}

// The SSL keeps the BIO, pointing nowhere, until an engine adopts it and puts its own in.
tls::SslPtr TlsEngine::release() noexcept {
  detachCipherBio(bio_);
  bio_ = nullptr;
  if (ssl_) SSL_set_app_data(ssl_.get(), nullptr);
  return std::move(ssl_);
}

void TlsEngine::adopt(tls::SslPtr established) noexcept {
  ssl_ = std::move(established);
  phase_ = TlsPhase::Established;
  attachBuffers();
}

// OpenSSL drops the session of a connection freed without close_notify both ways (and marks it
// not resumable): most clients just close the socket, and that must not cost them their session.
// A connection that failed keeps that treatment.
TlsEngine::~TlsEngine() {
  if (ssl_ && phase_ != TlsPhase::Failed) {
    SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
  detachCipherBio(bio_);  // in case something else still holds the SSL
}

// One BIO both ways, as a socket BIO would be: the SSL holds a reference for each direction.
void TlsEngine::attachBuffers() {
  if (!ssl_) return;
  bio_ = newCipherBio(buffers_);
  if (bio_ == nullptr) {
    ssl_.reset();
    return;
  }
  BIO_up_ref(bio_);
  SSL_set0_rbio(ssl_.get(), bio_);
  SSL_set0_wbio(ssl_.get(), bio_);
  // Whatever waits is taken in one read rather than a record header, then its body, at a time.
  SSL_set_read_ahead(ssl_.get(), 1);
}

void TlsEngine::setWaker(HandshakeWaker* waker) noexcept {
  if (ssl_) SSL_set_app_data(ssl_.get(), waker);
}

void TlsEngine::feed(char* buffer, std::size_t length) noexcept {
  buffers_.input.adopt(buffer, length);
}

bool TlsEngine::feed(std::span<const char> ciphertext) noexcept {
  try {
    buffers_.input.append(ciphertext);
  } catch (const std::bad_alloc&) {
    return false;
  }
  return true;
}

// The error queue is per thread and shared by every connection: it is emptied before each call
// so that SSL_get_error() judges only this one. Emptying it walks all its slots (OpenSSL 3.0), so
// only a queue that holds something is emptied; looking costs a tenth of that.
namespace {
void clearErrors() noexcept {
  if (ERR_peek_error() != 0) ERR_clear_error();
}
}  // namespace

TlsStatus TlsEngine::handshake() noexcept {
  if (phase_ != TlsPhase::Handshaking) {
    return phase_ == TlsPhase::Failed ? TlsStatus::Failed : TlsStatus::Ok;
  }
  clearErrors();
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
  clearErrors();
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
  clearErrors();
  std::size_t n = 0;
  // The output queue grows, so OpenSSL takes all of it at once (no partial writes to retry).
  int result = SSL_write_ex(ssl_.get(), plaintext.data(), plaintext.size(), &n);
  if (result == 1) return {TlsStatus::Ok, n};
  return {fail(result)};
}

void TlsEngine::shutdown() noexcept {
  if (phase_ != TlsPhase::Established && phase_ != TlsPhase::Closed) return;
  clearErrors();
  SSL_shutdown(ssl_.get());
  if (phase_ == TlsPhase::Established) phase_ = TlsPhase::ShutdownSent;
}

void TlsEngine::sayCloseNotify(int fd) noexcept {
  if (fd < 0 || buffers_.output.size() != 0) return;
  shutdown();
  for (BufferSlice slice; buffers_.output.pop(slice); buffers_.output.pool().give(slice.buffer))
    (void)::send(fd, slice.buffer + slice.offset, slice.length, MSG_DONTWAIT | MSG_NOSIGNAL);
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
