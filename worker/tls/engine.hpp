// One TLS connection over memory buffers: ciphertext in and out, plaintext in and out.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "tls/openssl.hpp"
#include "worker/net/buffer_pool.hpp"
#include "worker/tls/cipher_bio.hpp"
#include "worker/tls/context.hpp"

namespace molt::worker {

// Lifecycle of a TLS connection.
enum class TlsPhase {
  Handshaking,   // the handshake needs more bytes from the peer (or has output to send)
  Established,   // application data flows both ways
  ShutdownSent,  // we queued close_notify: no more writes
  Closed,        // the peer sent close_notify: no more reads
  Failed         // fatal error; output may hold an alert to send before closing the socket
};

enum class TlsStatus {
  Ok,         // `bytes` were moved
  WantInput,  // nothing to do until more ciphertext is fed
  Closed,     // the peer's close_notify: no more plaintext will come
  Failed      // fatal: see error()
};

struct TlsResult {
  TlsStatus status;
  std::size_t bytes = 0;
};

// A server (or, for tests and backends, a client) TLS connection that never touches a socket:
// the caller feeds what it read from the peer, and sends what takeOutput() returns, after every
// call. Ciphertext waits in buffers of `pool` both ways, and only while it waits: an idle engine
// holds none. Used on one thread (the worker's loop); never throws. Holds its TlsContext alive.
class TlsEngine {
 public:
  // Server side of `context`. valid() is false when OpenSSL could not allocate.
  TlsEngine(BufferPool& pool, std::shared_ptr<const TlsContext> context);
  // Takes `ssl`, already set to the connect or accept state.
  TlsEngine(BufferPool& pool, tls::SslPtr ssl);
  // Takes `ssl` of `context`, whose handshake ended under another engine (a parked connection's,
  // see release()).
  TlsEngine(BufferPool& pool, std::shared_ptr<const TlsContext> context, tls::SslPtr established);
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  bool valid() const { return ssl_ != nullptr; }
  // Who continues the handshake when it was suspended for a fleet lookup (see TlsSessionStore);
  // must outlive the engine or be reset.
  void setWaker(HandshakeWaker* waker) noexcept;
  // Appends ciphertext received from the peer: a buffer of the pool, which the engine takes.
  void feed(char* buffer, std::size_t length) noexcept;
  // The same, copied. False only when out of memory.
  bool feed(std::span<const char> ciphertext) noexcept;
  // Advances the handshake as far as the fed bytes allow.
  TlsStatus handshake() noexcept;
  // Decrypts into `plaintext` (running the handshake first if needed).
  TlsResult read(std::span<char> plaintext) noexcept;
  // Encrypts all of `plaintext` into the output (Established only).
  TlsResult write(std::span<const char> plaintext) noexcept;
  // Queues close_notify (idempotent).
  void shutdown() noexcept;
  // For a connection about to close with nothing else waiting to be written: close_notify, sent
  // on `fd` at once (best effort), so that its peer can tell the end from a truncation. Nothing
  // after a failure, or before the handshake ended.
  void sayCloseNotify(int fd) noexcept;

  // Nothing waits either way, in the engine or in OpenSSL, after a completed handshake: the
  // connection can be parked.
  bool quiescent() const noexcept;
  // Gives the connection away (quiescent() first): its SSL, which this engine no longer reads or
  // writes for, and which no longer wakes anyone; the engine is left without one. adopt() takes
  // it back.
  tls::SslPtr release() noexcept;
  void adopt(tls::SslPtr established) noexcept;
  const std::shared_ptr<const TlsContext>& context() const { return context_; }

  // Ciphertext waiting to be sent, and two ways to take it: its next pool buffer (the caller
  // gives it back), or a copy.
  std::size_t pendingOutput() const noexcept { return buffers_.output.size(); }
  bool takeOutput(BufferSlice& slice) noexcept { return buffers_.output.pop(slice); }
  std::size_t takeOutput(std::span<char> out) noexcept { return buffers_.output.read(out); }

  TlsPhase phase() const { return phase_; }
  std::string_view serverName() const;  // SNI sent by the client, or ""
  std::string_view alpn() const;        // negotiated protocol, or ""
  std::string_view version() const;     // "TLSv1.3", ...
  bool resumed() const;                 // the handshake resumed a session
  const std::string& error() const { return error_; }
  SSL* ssl() const { return ssl_.get(); }

 private:
  void attachBuffers();
  TlsStatus fail(int result) noexcept;

  std::shared_ptr<const TlsContext> context_;
  CipherBuffers buffers_;  // before ssl_: freed after it
  tls::SslPtr ssl_;
  BIO* bio_ = nullptr;  // owned by ssl_, which reads and writes through it
  TlsPhase phase_ = TlsPhase::Handshaking;
  std::string error_;
};

}  // namespace molt::worker
