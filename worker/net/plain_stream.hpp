// PlainStream: a TCP connection behind the ClientStream interface. Accepted client connections
// use it through that interface; server connections use it directly (they also connect).
#pragma once

#include <uv.h>

#include "common/address.hpp"
#include "common/uv_handle.hpp"
#include "worker/net/buffer_pool.hpp"
#include "worker/net/client_stream.hpp"

namespace molt::worker {

// One uv_tcp_t. Reads take a pooled buffer only when the socket is readable, so an idle stream
// holds no buffer. The pool must outlive every write queued on the stream (the worker keeps it
// until the loop has run its last callbacks).
class PlainStream final : public ClientStream {
 public:
  PlainStream(uv_loop_t* loop, BufferPool& buffers);
  ~PlainStream() override = default;
  PlainStream(const PlainStream&) = delete;
  PlainStream& operator=(const PlainStream&) = delete;

  // Accepts the next pending connection of `listener`. Returns 0 or a libuv error (UV_EAGAIN
  // when another worker took it first).
  int accept(uv_stream_t* listener) noexcept;
  // Starts connecting to `to`; onStreamConnected reports the result. Returns 0 or a libuv error.
  int connect(const common::SocketAddress& to) noexcept;
  // Takes a connected socket another worker let go (a migration). Returns 0 or a libuv error
  // (the descriptor is then still the caller's).
  int adopt(int fd) noexcept;

  void setHandler(StreamHandler* handler) noexcept override { handler_ = handler; }
  int startReading() noexcept override;
  void stopReading() noexcept override;
  int write(std::span<const BufferSlice> slices) noexcept override;
  std::size_t queuedBytes() const noexcept override { return tcp_->write_queue_size; }
  int shutdown() noexcept override;
  const common::SocketAddress& peer() const noexcept override { return peer_; }
  bool secure() const noexcept override { return false; }
  int descriptor() const noexcept override;

 private:
  int queue(std::span<const BufferSlice> slices, uv_buf_t* bufs, std::size_t done) noexcept;
  static void onAlloc(uv_handle_t* handle, size_t size, uv_buf_t* buf);
  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

  common::UvHandle<uv_tcp_t> tcp_;
  BufferPool& buffers_;
  StreamHandler* handler_ = nullptr;
  common::SocketAddress peer_;
  bool reading_ = false;
};

}  // namespace molt::worker
