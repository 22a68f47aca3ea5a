#include "worker/net/plain_stream.hpp"

#include <cstring>

namespace molt::worker {
namespace {

// A write carries the pooled buffers it sends: they go back to the pool in the callback, which
// also runs (with UV_ECANCELED) for writes still queued when the stream is closed.
struct WriteRequest {
  uv_write_t req;
  BufferPool* pool;
  std::size_t count;
  char* buffers[ClientStream::kMaxSlices];
};

void giveBack(BufferPool& pool, std::span<const BufferSlice> slices) {
  for (const auto& s : slices) pool.give(s.buffer);
}

}  // namespace

PlainStream::PlainStream(uv_loop_t* loop, BufferPool& buffers) : buffers_(buffers) {
  uv_tcp_init(loop, tcp_.get());
  tcp_->data = this;
}

int PlainStream::accept(uv_stream_t* listener) noexcept {
  if (int rc = uv_accept(listener, tcp_.stream()); rc < 0) return rc;
  uv_tcp_nodelay(tcp_.get(), 1);
  int length = sizeof peer_.storage;
  if (uv_tcp_getpeername(tcp_.get(), reinterpret_cast<sockaddr*>(&peer_.storage), &length) == 0)
    peer_.length = static_cast<socklen_t>(length);
  return 0;
}

int PlainStream::adopt(int fd) noexcept {
  if (int rc = uv_tcp_open(tcp_.get(), fd); rc < 0) return rc;
  uv_tcp_nodelay(tcp_.get(), 1);
  int length = sizeof peer_.storage;
  if (uv_tcp_getpeername(tcp_.get(), reinterpret_cast<sockaddr*>(&peer_.storage), &length) == 0)
    peer_.length = static_cast<socklen_t>(length);
  return 0;
}

int PlainStream::descriptor() const noexcept {
  uv_os_fd_t fd = -1;
  return uv_fileno(tcp_.base(), &fd) == 0 ? fd : -1;
}

int PlainStream::connect(const common::SocketAddress& to) noexcept {
  peer_ = to;
  auto* req = new uv_connect_t{};
  int rc = uv_tcp_connect(req, tcp_.get(), to.sa(), [](uv_connect_t* r, int status) {
    auto* self = static_cast<PlainStream*>(r->handle->data);
    delete r;
    if (!self) return;
    if (status == 0) uv_tcp_nodelay(self->tcp_.get(), 1);
    if (self->handler_) self->handler_->onStreamConnected(*self, status);
  });
  if (rc < 0) delete req;
  return rc;
}

int PlainStream::startReading() noexcept {
  if (reading_) return 0;
  int rc = uv_read_start(tcp_.stream(), onAlloc, onRead);
  reading_ = rc == 0;
  return rc;
}

void PlainStream::stopReading() noexcept {
  if (!reading_) return;
  uv_read_stop(tcp_.stream());
  reading_ = false;
}

void PlainStream::onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<PlainStream*>(handle->data);
  char* memory = self ? self->buffers_.take() : nullptr;
  *buf = uv_buf_init(memory, memory ? BufferPool::kBufferSize : 0);
}

void PlainStream::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<PlainStream*>(stream->data);
  if (!self) return;  // closed: libuv reads nothing more into a closing handle
  if (nread > 0 && self->handler_) {
    self->handler_->onStreamData(*self, buf->base, static_cast<std::size_t>(nread));
    return;
  }
  self->buffers_.give(buf->base);
  if (nread == 0) return;  // EAGAIN
  if (nread > 0) return;   // no handler: nobody wants the bytes
  uv_read_stop(stream);
  self->reading_ = false;
  if (self->handler_) self->handler_->onStreamEnd(*self, static_cast<int>(nread));
}

int PlainStream::write(std::span<const BufferSlice> slices) noexcept {
  if (slices.empty() || slices.size() > kMaxSlices) {
    giveBack(buffers_, slices);
    return UV_EINVAL;
  }
  uv_buf_t bufs[kMaxSlices];
  std::size_t total = 0;
  for (std::size_t i = 0; i < slices.size(); ++i) {
    bufs[i] = uv_buf_init(slices[i].buffer + slices[i].offset, slices[i].length);
    total += slices[i].length;
  }
  // Most writes fit in the socket buffer at once. Writing them here spares the write request,
  // its callback and, in libuv 1.44, an epoll_ctl per completed write (uv__drain re-arms the
  // watcher even when nothing changed).
  std::size_t done = 0;
  if (tcp_->write_queue_size == 0) {
    int n = uv_try_write(tcp_.stream(), bufs, static_cast<unsigned>(slices.size()));
    if ((n < 0 && n != UV_EAGAIN) || static_cast<std::size_t>(n) == total) {
      giveBack(buffers_, slices);
      return n < 0 ? n : 0;
    }
    done = n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  return queue(slices, bufs, done);
}

// Queues what write() could not send at once: `bufs` describes `slices`, of which the first
// `done` bytes are already written.
int PlainStream::queue(std::span<const BufferSlice> slices, uv_buf_t* bufs,
                       std::size_t done) noexcept {
  auto* w = new WriteRequest{{}, &buffers_, slices.size(), {}};
  std::size_t first = 0;
  for (std::size_t i = 0; i < slices.size(); ++i) {
    w->buffers[i] = slices[i].buffer;
    if (done >= bufs[i].len) {
      done -= bufs[i].len;
      first = i + 1;
      continue;
    }
    bufs[i].base += done;
    bufs[i].len -= done;
    done = 0;
  }
  int rc = uv_write(&w->req, tcp_.stream(), bufs + first,
                    static_cast<unsigned>(slices.size() - first), [](uv_write_t* req, int status) {
                      auto* w = reinterpret_cast<WriteRequest*>(req);
                      auto* self = static_cast<PlainStream*>(req->handle->data);
                      for (std::size_t i = 0; i < w->count; ++i) w->pool->give(w->buffers[i]);
                      delete w;
                      if (self && self->handler_) self->handler_->onStreamWritten(*self, status);
                    });
  if (rc < 0) {
    giveBack(buffers_, slices);
    delete w;
  }
  return rc;
}

int PlainStream::shutdown() noexcept {
  auto* req = new uv_shutdown_t{};
  int rc = uv_shutdown(req, tcp_.stream(), [](uv_shutdown_t* r, int status) {
    auto* self = static_cast<PlainStream*>(r->handle->data);
    delete r;
    if (self && self->handler_) self->handler_->onStreamShutdown(*self, status);
  });
  if (rc < 0) delete req;
  return rc;
}

}  // namespace molt::worker
