// TlsStream: TLS termination behind the ClientStream interface, over a PlainStream.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "common/uv_handle.hpp"
#include "shm/worker_stats.hpp"
#include "worker/net/buffer_pool.hpp"
#include "worker/net/client_stream.hpp"
#include "worker/net/plain_stream.hpp"
#include "worker/tls/engine.hpp"

namespace molt::worker {

class TlsStream;

// A parked TLS connection's state (ClientStream::takeParkState): its SSL, after a completed
// handshake with nothing in flight, and the context it belongs to. Freed, it keeps the session
// resumable, as a connection that just closes does.
struct ParkedTls final : ParkingLot::Cargo {
  ParkedTls(tls::SslPtr ssl, std::shared_ptr<const TlsContext> context) noexcept
      : ssl(std::move(ssl)), context(std::move(context)) {}
  ~ParkedTls() override;
  tls::SslPtr ssl;
  std::shared_ptr<const TlsContext> context;
};

// The worker, as its TLS streams see it. Told when a TLS handshake starts and ends, so a draining
// worker knows when it may unmap the session cache (no handshake can touch it any more).
class HandshakeObserver {
 public:
  virtual ~HandshakeObserver() = default;
  virtual void handshakeStarted() noexcept = 0;
  virtual void handshakeEnded() noexcept = 0;
};

// An accepted connection that speaks TLS to the client and plaintext to its session. Ciphertext
// travels in pooled buffers like plain reads, from the socket's read into OpenSSL and from
// OpenSSL to the socket's write, and is held only while in flight; OpenSSL releases its own record
// buffers when they empty (SSL_MODE_RELEASE_BUFFERS). Writes made before the handshake completes
// wait for it. Read backpressure follows the session: while it does not read, records stay
// undecrypted and the socket unread.
class TlsStream final : public ClientStream, private StreamHandler, private HandshakeWaker {
 public:
  TlsStream(uv_loop_t* loop, BufferPool& buffers, std::shared_ptr<const TlsContext> context,
            HandshakeObserver& observer);
  // A parked connection served again: its handshake is long done; adopt() its descriptor.
  TlsStream(uv_loop_t* loop, BufferPool& buffers, std::unique_ptr<ParkedTls> parked,
            HandshakeObserver& observer);
  ~TlsStream() override;
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Accepts the next pending connection of `listener` and starts the handshake (reading).
  int accept(uv_stream_t* listener) noexcept;
  // Takes `fd`, the descriptor of the parked connection this stream was made for.
  int adopt(int fd) noexcept { return inner_.adopt(fd); }
  const TlsEngine& engine() const { return engine_; }
  // Where a completed handshake is counted (full or resumed): the frontend's stats row.
  void countHandshakesIn(shm::FrontendRow* row) noexcept { stats_ = row; }

  void setHandler(StreamHandler* handler) noexcept override { handler_ = handler; }
  int startReading() noexcept override;
  void stopReading() noexcept override;
  int write(std::span<const BufferSlice> slices) noexcept override;
  std::size_t queuedBytes() const noexcept override;
  int shutdown() noexcept override;
  const common::SocketAddress& peer() const noexcept override { return inner_.peer(); }
  bool secure() const noexcept override { return true; }
  int descriptor() const noexcept override { return inner_.descriptor(); }
  std::string_view tlsVersion() const noexcept override {
    return handshaking_ ? std::string_view() : engine_.version();
  }
  bool tlsResumed() const noexcept override { return !handshaking_ && engine_.resumed(); }
  bool takeParkState(std::unique_ptr<ParkingLot::Cargo>& state) noexcept override;
  void restoreParkState(std::unique_ptr<ParkingLot::Cargo> state) noexcept override;

 private:
  // Events of the socket underneath.
  void onStreamData(ClientStream& stream, char* buffer, std::size_t length) noexcept override;
  void onStreamEnd(ClientStream& stream, int status) noexcept override;
  void onStreamWritten(ClientStream& stream, int status) noexcept override;
  void onStreamShutdown(ClientStream& stream, int status) noexcept override;

  void attach(uv_loop_t* loop) noexcept;  // both constructors: the socket's and OpenSSL's events
  void pump() noexcept;
  bool advanceHandshake() noexcept;
  bool decrypt() noexcept;
  int encrypt(std::span<const BufferSlice> slices) noexcept;
  int flush() noexcept;
  void fail(int status) noexcept;
  bool finishHandshake() noexcept;
  void scheduleDeferred() noexcept;
  void wakeHandshake() noexcept override {
    handshakeDue_ = true;
    scheduleDeferred();
  }

  BufferPool& buffers_;
  PlainStream inner_;
  TlsEngine engine_;
  HandshakeObserver& observer_;
  shm::FrontendRow* stats_ = nullptr;
  StreamHandler* handler_ = nullptr;
  bool reading_ = false;       // the session wants plaintext
  bool handshaking_ = true;    // counted by the observer until it ends
  bool handshakeDue_ = false;  // the handshake may get further (bytes came, or it was woken)
  bool inputEnded_ = false;    // the socket reported its end (status below)
  int inputStatus_ = 0;
  bool endReported_ = false;  // onStreamEnd went to the session
  // write() calls made before the handshake ended (a vector: an empty deque allocates).
  std::vector<std::vector<BufferSlice>> early_;
  bool notifyWritten_ = false;  // early writes went out: tell the session its queue dropped
  common::UvHandle<uv_idle_t> deferred_;  // runs pump() outside the session's own calls
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace molt::worker
