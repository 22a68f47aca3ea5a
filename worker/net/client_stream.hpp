// ClientStream: the byte stream a session talks to a client through. Plain TCP today
// (worker/net/plain_stream.hpp); TLS termination slots in as another implementation, so that
// TcpSession and HttpSession never touch a socket themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "common/address.hpp"
#include "worker/net/parking.hpp"

namespace molt::worker {

class ClientStream;

// A slice of a BufferPool buffer. Handing one to ClientStream::write passes ownership of the
// whole buffer, which goes back to the pool once the bytes are written (or the write failed).
struct BufferSlice {
  char* buffer = nullptr;
  std::uint32_t offset = 0;
  std::uint32_t length = 0;
};

// What a stream reports to its owner. Called from loop callbacks, never from inside a call the
// owner made on the stream. The owner may stop reading, write, or destroy the stream from inside
// any of these; the stream touches nothing of its own after calling one.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // `length` bytes arrived in `buffer`, a BufferPool buffer the handler now owns.
  virtual void onStreamData(ClientStream& stream, char* buffer, std::size_t length) noexcept = 0;
  // Reading ended: UV_EOF for a clean end of input, else a libuv error. Reading has stopped.
  virtual void onStreamEnd(ClientStream& stream, int status) noexcept = 0;
  // A write() that had to wait for the peer completed (status 0) or failed: queuedBytes() has
  // dropped. Writes that complete inside write() report nothing.
  virtual void onStreamWritten(ClientStream& stream, int status) noexcept = 0;
  // A shutdown() completed: everything queued before it was written, then FIN.
  virtual void onStreamShutdown(ClientStream& stream, int status) noexcept = 0;
  // An outgoing connect completed (only streams that connect: PlainStream::connect).
  virtual void onStreamConnected(ClientStream& stream, int status) noexcept {
    (void)stream;
    (void)status;
  }
};

// A connected byte stream, owned by one session. Destroying it closes the connection; writes
// still queued are dropped and their buffers go back to the pool. All calls are from the
// worker's loop thread; none reports through the handler before returning.
class ClientStream {
 public:
  // Most slices one write() takes.
  static constexpr std::size_t kMaxSlices = 8;

  virtual ~ClientStream() = default;

  virtual void setHandler(StreamHandler* handler) noexcept = 0;
  // Starts (or resumes) delivering input to the handler. Returns 0 or a libuv error.
  virtual int startReading() noexcept = 0;
  virtual void stopReading() noexcept = 0;
  // Writes `slices` (at most kMaxSlices) in order, taking ownership of their buffers: at once
  // when the socket takes them, else queued, and onStreamWritten follows. Returns 0 or a libuv
  // error (the buffers are then given back).
  virtual int write(std::span<const BufferSlice> slices) noexcept = 0;
  // Bytes accepted by write() and not yet handed to the kernel: the backpressure signal.
  virtual std::size_t queuedBytes() const noexcept = 0;
  // Sends FIN after everything queued; onStreamShutdown follows unless this returns an error.
  virtual int shutdown() noexcept = 0;
  // The peer's address (for X-Forwarded-For and the access log).
  virtual const common::SocketAddress& peer() const noexcept = 0;
  // True when the client side is encrypted (X-Forwarded-Proto: https).
  virtual bool secure() const noexcept = 0;
  // The connected socket's descriptor (a migration passes a duplicate of it); -1 when closed.
  virtual int descriptor() const noexcept = 0;
  // True for one stream of an HTTP/2 connection (worker/http2/): its requests are logged as
  // HTTP/2.0.
  virtual bool http2() const noexcept { return false; }
  // TLS: the protocol version ("TLSv1.3"; empty in clear) and whether the handshake resumed a
  // session, for the access log.
  virtual std::string_view tlsVersion() const noexcept { return {}; }
  virtual bool tlsResumed() const noexcept { return false; }
  // The session waits for the client's next request and has nothing in flight (an HTTP/2
  // stream's exchange is over).
  virtual void idle() noexcept {}
  // Parking (worker/net/parking.hpp): what the connection needs besides its descriptor to be
  // served again, given to the parking lot. Nothing for a plaintext stream; a TLS stream's
  // connection state. False: bytes are in flight, and it cannot park now. The stream reads and
  // writes nothing more unless restoreParkState() gives the state back (the lot refused it).
  virtual bool takeParkState(std::unique_ptr<ParkingLot::Cargo>& state) noexcept {
    (void)state;
    return true;
  }
  virtual void restoreParkState(std::unique_ptr<ParkingLot::Cargo> state) noexcept { (void)state; }
};

}  // namespace molt::worker
