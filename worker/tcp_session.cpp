#include "worker/tcp_session.hpp"

#include "common/log.hpp"

namespace molt::worker {
namespace {

// Write requests carry the pooled buffer they send; the session is found through the stream's
// `data`, which UvHandle clears when the session is gone (callbacks of cancelled writes still run).
struct WriteRequest {
  uv_write_t req;
  char* buffer;
  BufferPool* pool;
};

}  // namespace

TcpSession::TcpSession(SessionHost& host, const common::FrontendConfig& frontend, Backend& backend)
    : host_(host), frontend_(frontend), backend_(backend) {
  uv_tcp_init(host_.loop(), client_.tcp.get());
  uv_timer_init(host_.loop(), timer_.get());
  client_.tcp->data = this;
  timer_->data = this;
  // Tunnel timeout when the backend sets one, else the frontend's client timeout: in tcp mode
  // a connection is idle only when neither side sent anything.
  idleTimeoutMs_ = static_cast<uint64_t>(backend_.config().timeouts.tunnel.count());
  if (idleTimeoutMs_ == 0)
    idleTimeoutMs_ = static_cast<uint64_t>(frontend_.timeouts.client.count());
}

TcpSession::~TcpSession() {
  if (serverIndex_ >= 0) --backend_.server(serverIndex_).connections;
}

void TcpSession::start() {
  uv_tcp_nodelay(client_.tcp.get(), 1);
  connectNext();
}

void TcpSession::connectNext() {
  if (serverIndex_ >= 0) {
    --backend_.server(serverIndex_).connections;
    serverIndex_ = -1;
  }
  unsigned attempts = static_cast<unsigned>(tried_.size());
  int index = attempts <= backend_.config().retries ? backend_.pick(tried_) : -1;
  if (index < 0) {
    common::log::warn("frontend {} backend {}: no server could take the connection ({} tried)",
                      frontend_.name, backend_.name(), attempts);
    return finish("no server");
  }
  tried_.push_back(index);
  serverIndex_ = index;
  Server& server = backend_.server(index);
  ++server.connections;

  server_.tcp = common::UvHandle<uv_tcp_t>();  // a failed attempt's handle closes here
  uv_tcp_init(host_.loop(), server_.tcp.get());
  server_.tcp->data = this;
  auto* req = new uv_connect_t{};
  int rc = uv_tcp_connect(req, server_.tcp.get(), server.address.sa(), [](uv_connect_t* r, int st) {
    auto* self = static_cast<TcpSession*>(r->handle->data);
    delete r;
    if (self) self->onConnected(st);
  });
  if (rc < 0) {
    delete req;
    common::log::warn("connect(backend {} server {} {}): {}", backend_.name(), server.name,
                      server.address.text(), uv_strerror(rc));
    return connectNext();
  }
  armTimer(static_cast<uint64_t>(backend_.config().timeouts.connect.count()));
}

void TcpSession::onConnected(int status) {
  if (phase_ != SessionPhase::Connecting) return;
  if (status < 0) {
    const Server& server = backend_.server(serverIndex_);
    common::log::warn("connect(backend {} server {} {}): {}", backend_.name(), server.name,
                      server.address.text(), uv_strerror(status));
    return connectNext();
  }
  startSplicing();
}

void TcpSession::startSplicing() {
  phase_ = SessionPhase::Splicing;
  uv_tcp_nodelay(server_.tcp.get(), 1);
  lastActivity_ = uv_now(host_.loop());
  armTimer(idleTimeoutMs_);
  startReading(client_);
  startReading(server_);
}

void TcpSession::startReading(Side& side) {
  side.paused = false;
  if (side.eof) return;
  auto alloc = [](uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* self = static_cast<TcpSession*>(handle->data);
    char* memory = self ? self->host_.buffers().take() : nullptr;
    *buf = uv_buf_init(memory, memory ? BufferPool::kBufferSize : 0);
  };
  auto read = [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<TcpSession*>(stream->data);
    if (!self) return;
    Side& side = stream == self->client_.tcp.stream() ? self->client_ : self->server_;
    self->onRead(side, nread, buf);
  };
  uv_read_start(side.tcp.stream(), alloc, read);
}

void TcpSession::onRead(Side& side, ssize_t nread, const uv_buf_t* buf) {
  BufferPool& pool = host_.buffers();
  if (nread <= 0) {
    pool.give(buf->base);
    if (nread == 0) return;
    if (nread == UV_EOF) return forwardEof(side);
    return finish(uv_strerror(static_cast<int>(nread)));
  }
  lastActivity_ = uv_now(host_.loop());
  Side& target = other(side);
  auto* write = new WriteRequest{{}, buf->base, &pool};
  uv_buf_t out = uv_buf_init(buf->base, static_cast<unsigned>(nread));
  int rc = uv_write(&write->req, target.tcp.stream(), &out, 1, [](uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteRequest*>(req);
    auto* self = static_cast<TcpSession*>(req->handle->data);
    w->pool->give(w->buffer);
    uv_stream_t* target = req->handle;
    delete w;
    if (!self) return;
    self->onWritten(target == self->client_.tcp.stream() ? self->client_ : self->server_, status);
  });
  if (rc < 0) {
    pool.give(write->buffer);
    delete write;
    return finish(uv_strerror(rc));
  }
  if (target.tcp->write_queue_size > kHighWater) {
    uv_read_stop(side.tcp.stream());
    side.paused = true;
  }
}

void TcpSession::onWritten(Side& target, int status) {
  if (status < 0) return finish(uv_strerror(status));
  Side& source = other(target);
  if (source.paused && target.tcp->write_queue_size < kLowWater) startReading(source);
}

void TcpSession::forwardEof(Side& from) {
  from.eof = true;
  uv_read_stop(from.tcp.stream());
  Side& to = other(from);
  // uv_shutdown waits for the writes already queued on `to`, so no byte is lost behind the FIN.
  auto* req = new uv_shutdown_t{};
  int rc = uv_shutdown(req, to.tcp.stream(), [](uv_shutdown_t* r, int status) {
    auto* self = static_cast<TcpSession*>(r->handle->data);
    uv_stream_t* stream = r->handle;
    delete r;
    if (!self) return;
    if (status < 0) return self->finish(uv_strerror(status));
    (stream == self->client_.tcp.stream() ? self->client_ : self->server_).shutdown = true;
    self->maybeFinish();
  });
  if (rc < 0) {
    delete req;
    finish(uv_strerror(rc));
  }
}

void TcpSession::maybeFinish() {
  if (client_.shutdown && server_.shutdown) finish(nullptr);
}

void TcpSession::armTimer(uint64_t timeoutMs) {
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<TcpSession*>(t->data)) self->onTimer();
      },
      timeoutMs, 0);
}

void TcpSession::onTimer() {
  if (phase_ == SessionPhase::Connecting) {
    const Server& server = backend_.server(serverIndex_);
    common::log::warn("connect(backend {} server {} {}): timed out after {} ms", backend_.name(),
                      server.name, server.address.text(),
                      backend_.config().timeouts.connect.count());
    return connectNext();
  }
  // Idle check without re-arming on every read: the timer fires at the earliest possible
  // deadline and re-arms for whatever is left.
  uint64_t idle = uv_now(host_.loop()) - lastActivity_;
  if (idle >= idleTimeoutMs_) return finish("idle timeout");
  armTimer(idleTimeoutMs_ - idle);
}

void TcpSession::finish(const char* reason) noexcept {
  if (phase_ == SessionPhase::Done) return;
  (void)reason;
  phase_ = SessionPhase::Done;
  uv_timer_stop(timer_.get());
  if (client_.tcp.initialized()) uv_read_stop(client_.tcp.stream());
  if (server_.tcp.initialized()) uv_read_stop(server_.tcp.stream());
  host_.sessionEnded(this);
}

}  // namespace molt::worker
