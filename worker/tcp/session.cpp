#include "worker/tcp/session.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "common/log.hpp"

namespace molt::worker {

TcpSession::TcpSession(SessionHost& host, std::shared_ptr<const common::FrontendConfig> frontend,
                       std::shared_ptr<Backend> backend, std::unique_ptr<ClientStream> client)
    : host_(host),
      frontend_(std::move(frontend)),
      backend_(std::move(backend)),
      clientStream_(std::move(client)) {
  client_.stream = clientStream_.get();
  clientStream_->setHandler(this);
  uv_timer_init(host_.loop(), timer_.get());
  timer_->data = this;
  // Tunnel timeout when the backend sets one, else the frontend's client timeout: in tcp mode
  // a connection is idle only when neither side sent anything.
  idleTimeoutMs_ = static_cast<uint64_t>(backend_->config().timeouts.tunnel.count());
  if (idleTimeoutMs_ == 0)
    idleTimeoutMs_ = static_cast<uint64_t>(frontend_->timeouts.client.count());
  // Until the client's first byte (a TLS handshake included), the frontend's client timeout: a
  // connection that says nothing does not hold a server connection for the tunnel timeout.
  firstByteTimeoutMs_ = static_cast<uint64_t>(frontend_->timeouts.client.count());
  acceptedAt_ = uv_now(host_.loop());
}

TcpSession::~TcpSession() {
  if (serverIndex_ >= 0) backend_->connectionClosed(serverIndex_);
}

void TcpSession::start() {
  connectNext();
}

void TcpSession::startAdopted(std::unique_ptr<PlainStream> server, int serverIndex) {
  serverStream_ = std::move(server);
  server_.stream = serverStream_.get();
  serverStream_->setHandler(this);
  serverIndex_ = serverIndex;
  if (serverIndex_ >= 0) backend_->connectionOpened(serverIndex_);
  clientSpoke_ = true;
  startSplicing();
}

void TcpSession::resume(std::unique_ptr<PlainStream> server, std::unique_ptr<ParkedTunnel> tunnel) {
  serverStream_ = std::move(server);
  server_.stream = serverStream_.get();
  serverStream_->setHandler(this);
  serverIndex_ = std::exchange(tunnel->serverIndex, -1);
  clientSpoke_ = true;
  phase_ = SessionPhase::Splicing;
  lastActivity_ = std::max(tunnel->clientActive, tunnel->serverActive);
  resumedAt_ = uv_now(host_.loop());
  armIdleTimer(uv_now(host_.loop()));  // at once when the idle timeout passed while parked
  startReading(client_);
  startReading(server_);
}

void TcpSession::connectNext() {
  if (serverIndex_ >= 0) {
    backend_->connectionClosed(serverIndex_);
    serverIndex_ = -1;
  }
  unsigned attempts = static_cast<unsigned>(tried_.size());
  int index =
      attempts <= backend_->config().retries ? backend_->pick(tried_, &client_.stream->peer()) : -1;
  if (index < 0) {
    common::log::warn("frontend {} backend {}: no server could take the connection ({} tried)",
                      frontend_->name, backend_->name(), attempts);
    return finish("no server");
  }
  tried_.push_back(index);
  serverIndex_ = index;
  backend_->connectionOpened(index);

  // A failed attempt's stream closes here; its pending connect callback finds no owner.
  serverStream_ = std::make_unique<PlainStream>(host_.loop(), host_.buffers());
  server_.stream = serverStream_.get();
  serverStream_->setHandler(this);
  if (int rc = serverStream_->connect(backend_->serverAddress(index)); rc < 0) {
    common::log::warn("connect(backend {} server {} {}): {}", backend_->name(),
                      backend_->serverName(index), backend_->serverAddress(index).text(),
                      uv_strerror(rc));
    return connectNext();
  }
  armTimer(static_cast<uint64_t>(backend_->config().timeouts.connect.count()));
}

void TcpSession::onStreamConnected(ClientStream&, int status) noexcept {
  if (phase_ != SessionPhase::Connecting) return;
  if (status < 0) {
    common::log::warn("connect(backend {} server {} {}): {}", backend_->name(),
                      backend_->serverName(serverIndex_),
                      backend_->serverAddress(serverIndex_).text(), uv_strerror(status));
    return connectNext();
  }
  startSplicing();
}

void TcpSession::startSplicing() {
  phase_ = SessionPhase::Splicing;
  lastActivity_ = uv_now(host_.loop());
  armIdleTimer(lastActivity_);
  startReading(client_);
  startReading(server_);
  if (move_ == Move::Wanted) tryMove();  // connected while its worker drains
}

void TcpSession::migrateWhenClean() noexcept {
  if (!movable() || move_ != Move::No || phase_ == SessionPhase::Done) return;
  move_ = Move::Wanted;
  tryMove();
}

// Both ways open, reading stopped, nothing read and unwritten: every byte not yet delivered is
// in the kernel's socket buffers, and moves with the sockets.
void TcpSession::tryMove() {
  if (move_ == Move::No || move_ == Move::Offered || phase_ != SessionPhase::Splicing) return;
  if (client_.eof || server_.eof || client_.shutdown || server_.shutdown) return;
  client_.stream->stopReading();
  server_.stream->stopReading();
  uint64_t now = uv_now(host_.loop());
  if (client_.stream->queuedBytes() > 0 || server_.stream->queuedBytes() > 0) {
    if (move_ != Move::Flushing) {
      move_ = Move::Flushing;
      moveSince_ = now;
    }
    return armTimer(moveSince_ + kMoveFlushMs > now ? moveSince_ + kMoveFlushMs - now : 0);
  }
  common::control::MovingConnection c;
  c.kind = frontend_->mode == common::Mode::Http ? common::control::MigrateKind::Tunnel
                                                 : common::control::MigrateKind::Tcp;
  c.frontend = frontend_->name;
  c.backend = backend_->name();
  if (serverIndex_ >= 0) c.server = backend_->serverName(serverIndex_);
  c.client.reset(fcntl(client_.stream->descriptor(), F_DUPFD_CLOEXEC, 0));
  c.upstream.reset(fcntl(server_.stream->descriptor(), F_DUPFD_CLOEXEC, 0));
  if (!c.client || !c.upstream) return stayAfterAll();  // out of descriptors
  move_ = Move::Offered;
  uv_timer_stop(timer_.get());  // nothing times out while the master decides
  host_.offerMigration(this, std::move(c));
}

void TcpSession::migrationAnswered(bool taken) noexcept {
  if (move_ != Move::Offered) return;
  if (taken) return finish("migrated");
  stayAfterAll();
}

void TcpSession::stayAfterAll() {
  move_ = Move::No;
  lastActivity_ = uv_now(host_.loop());
  armIdleTimer(lastActivity_);
  startReading(client_);
  if (phase_ != SessionPhase::Done) startReading(server_);
}

void TcpSession::startReading(Side& side) {
  side.paused = false;
  if (side.eof) return;
  if (int rc = side.stream->startReading(); rc < 0) finish(uv_strerror(rc));
}

void TcpSession::onStreamData(ClientStream& stream, char* buffer, std::size_t length) noexcept {
  Side& side = sideOf(stream);
  Side& target = other(side);
  lastActivity_ = uv_now(host_.loop());
  tlsBusy_ = false;
  if (&side == &client_ && !clientSpoke_) {
    clientSpoke_ = true;
    armIdleTimer(lastActivity_);  // the first-byte timeout is over; parking may come sooner
  }
  shm::FrontendRow& row = host_.frontendStats(frontend_->index);
  shm::bump(&side == &client_ ? row.bytesIn : row.bytesOut, length);
  BufferSlice slice{buffer, 0, static_cast<std::uint32_t>(length)};
  if (int rc = target.stream->write({&slice, 1}); rc < 0) return finish(uv_strerror(rc));
  if (target.stream->queuedBytes() > kHighWater) {
    side.stream->stopReading();
    side.paused = true;
  }
}

void TcpSession::onStreamEnd(ClientStream& stream, int status) noexcept {
  if (status == UV_EOF) return forwardEof(sideOf(stream));
  finish(uv_strerror(status));
}

void TcpSession::onStreamWritten(ClientStream& stream, int status) noexcept {
  if (status < 0) return finish(uv_strerror(status));
  if (move_ == Move::Flushing) return tryMove();
  Side& target = sideOf(stream);
  Side& source = other(target);
  if (source.paused && target.stream->queuedBytes() < kLowWater) startReading(source);
}

void TcpSession::forwardEof(Side& from) {
  from.eof = true;
  from.stream->stopReading();
  // The shutdown waits for the writes already queued, so no byte is lost behind the FIN.
  if (int rc = other(from).stream->shutdown(); rc < 0) finish(uv_strerror(rc));
}

void TcpSession::onStreamShutdown(ClientStream& stream, int status) noexcept {
  if (status < 0) return finish(uv_strerror(status));
  sideOf(stream).shutdown = true;
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
  if (move_ == Move::Flushing) return stayAfterAll();  // a peer is not reading
  if (phase_ == SessionPhase::Connecting) {
    common::log::warn("connect(backend {} server {} {}): timed out after {} ms", backend_->name(),
                      backend_->serverName(serverIndex_),
                      backend_->serverAddress(serverIndex_).text(),
                      backend_->config().timeouts.connect.count());
    return connectNext();
  }
  // Idle check without re-arming on every read: the timer fires at the earliest possible
  // deadline and re-arms for whatever is left.
  uint64_t now = uv_now(host_.loop());
  uint64_t idle = now - lastActivity_;
  if (idle >= idleTimeoutMs_) return finish("idle timeout");
  if (!clientSpoke_ && now - acceptedAt_ >= firstByteTimeoutMs_)
    return finish("client sent nothing");
  uint64_t quiet = now - std::max(lastActivity_, resumedAt_);
  if (mayPark() && quiet >= kParkAfterMs) return park();
  armIdleTimer(now);
}

void TcpSession::armIdleTimer(uint64_t now) {
  uint64_t idle = now - lastActivity_;
  uint64_t left = idle < idleTimeoutMs_ ? idleTimeoutMs_ - idle : 0;
  if (!clientSpoke_) {
    uint64_t silent = now - acceptedAt_;
    left = std::min(left, silent < firstByteTimeoutMs_ ? firstByteTimeoutMs_ - silent : 0);
  }
  uint64_t quiet = now - std::max(lastActivity_, resumedAt_);
  if (mayPark()) left = std::min(left, quiet < kParkAfterMs ? kParkAfterMs - quiet : 0);
  armTimer(left);
}

// Splicing, idle both ways with both open, nothing paused or queued, after the client spoke: all
// the connection needs is its two descriptors, and a TLS client's state.
bool TcpSession::mayPark() const noexcept {
  return phase_ == SessionPhase::Splicing && move_ == Move::No && !parkRefused_ && !tlsBusy_ &&
         clientSpoke_ && clientStream_->descriptor() >= 0 && serverStream_->descriptor() >= 0 &&
         !client_.eof && !server_.eof && !client_.shutdown && !server_.shutdown &&
         !client_.paused && !server_.paused && clientStream_->queuedBytes() == 0 &&
         serverStream_->queuedBytes() == 0 && idleTimeoutMs_ > kParkAfterMs;
}

// Duplicates of both descriptors go to the host; the session ends without counting its server's
// connection closed (the parked connection counts it).
void TcpSession::park() {
  std::unique_ptr<ParkedTunnel> tunnel;
  try {
    tunnel = std::make_unique<ParkedTunnel>(frontend_, backend_);
  } catch (const std::bad_alloc&) {
  }
  // A TLS client parks with its OpenSSL state, once nothing waits in it.
  if (tunnel && clientStream_->secure() && !clientStream_->takeParkState(tunnel->clientTls)) {
    tlsBusy_ = true;  // tried again once the connection is quiet after its next bytes
    return armIdleTimer(uv_now(host_.loop()));
  }
  int clientFd = tunnel ? fcntl(clientStream_->descriptor(), F_DUPFD_CLOEXEC, 0) : -1;
  int serverFd = clientFd < 0 ? -1 : fcntl(serverStream_->descriptor(), F_DUPFD_CLOEXEC, 0);
  if (serverFd >= 0) {
    tunnel->serverIndex = serverIndex_;
    tunnel->clientActive = tunnel->serverActive = lastActivity_;
    if (host_.parkTunnel(clientFd, serverFd, tunnel, lastActivity_ + idleTimeoutMs_)) {
      serverIndex_ = -1;
      return finish(nullptr);
    }
    tunnel->serverIndex = -1;  // still this session's
  }
  if (clientFd >= 0) close(clientFd);
  if (serverFd >= 0) close(serverFd);
  if (tunnel && tunnel->clientTls) clientStream_->restoreParkState(std::move(tunnel->clientTls));
  parkRefused_ = true;
  armIdleTimer(uv_now(host_.loop()));
}

void TcpSession::finish(const char* reason) noexcept {
  if (phase_ == SessionPhase::Done) return;
  (void)reason;
  phase_ = SessionPhase::Done;
  uv_timer_stop(timer_.get());
  clientStream_->stopReading();
  if (serverStream_) serverStream_->stopReading();
  host_.sessionEnded(this);
}

}  // namespace molt::worker
