// Connection: libuv plumbing shared by the HTTP and TCP echo connections.
#include "tools/origin/connection.hpp"

#include "common/log.hpp"

namespace molt::origin {

Connection::Connection(ConnectionSet& set)
    : out_(tcp_.stream(), &Connection::onWriteDone), set_(set) {
  next_ = set_.head_;
  if (next_) next_->prev_ = this;
  set_.head_ = this;
}

Connection::~Connection() {
  if (prev_) {
    prev_->next_ = next_;
  } else {
    set_.head_ = next_;
  }
  if (next_) next_->prev_ = prev_;
}

bool Connection::accept(uv_stream_t* server) {
  int rc = uv_tcp_init(server->loop, tcp_.get());
  if (rc == 0) rc = uv_accept(server, tcp_.stream());
  if (rc != 0) {
    common::log::warn("uv_accept(connection): {}", uv_strerror(rc));
    return false;
  }
  tcp_->data = this;
  uv_tcp_nodelay(tcp_.get(), 1);
  setReading(true);
  return !closed_;
}

void Connection::setReading(bool on) {
  if (closed_ || on == reading_) return;
  if (!on) {
    uv_read_stop(tcp_.stream());
    reading_ = false;
    return;
  }
  int rc = uv_read_start(tcp_.stream(), &Connection::onAlloc, &Connection::onReadDone);
  if (rc != 0) {
    common::log::warn("uv_read_start(connection): {}", uv_strerror(rc));
    close();
    return;
  }
  reading_ = true;
}

void Connection::shutdownWrite() {
  if (closed_) return;
  auto* req = new uv_shutdown_t;
  int rc = uv_shutdown(req, tcp_.stream(), &Connection::onShutdownDone);
  if (rc != 0) {
    delete req;
    close();
  }
}

void Connection::close() {
  setReading(false);
  closed_ = true;
}

void Connection::reapIfClosed() {
  if (closed_) delete this;
}

void Connection::onAlloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(takeBlock()->data, kBlockSize);
}

void Connection::onReadDone(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Block* block = buf->base ? Block::fromData(buf->base) : nullptr;
  auto* self = static_cast<Connection*>(stream->data);
  if (self && nread > 0) {
    self->onRead(block, static_cast<std::size_t>(nread));
  } else if (self && nread == UV_EOF) {
    self->onEof();
  } else if (self && nread < 0) {
    self->close();
  }
  release(block);
  if (self) self->reapIfClosed();
}

void Connection::onWriteDone(uv_write_t* req, int status) {
  auto* self = static_cast<Connection*>(req->handle->data);
  Output::complete(req);
  if (!self) return;  // the connection is gone; this write was cancelled by its close
  if (status < 0) {
    self->close();
  } else {
    self->onWritten();
  }
  self->reapIfClosed();
}

void Connection::onShutdownDone(uv_shutdown_t* req, int status) {
  auto* self = static_cast<Connection*>(req->handle->data);
  delete req;
  if (!self) return;
  if (status < 0) {
    self->close();
  } else {
    self->onShutdown();
  }
  self->reapIfClosed();
}

void ConnectionSet::closeAll() {
  while (head_) delete head_;
}

}  // namespace molt::origin
