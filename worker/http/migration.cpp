// HttpSession, migration: a draining worker's connection moves to a worker of the newest
// generation when it is at a clean boundary — between requests (with the bytes of any pipelined
// request already read), or a tunnel both of whose sides are open — and nothing it read is still
// waiting to be written. The receiving side starts here too (startAdopted).
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "worker/http/session.hpp"

namespace molt::worker {

namespace control = common::control;

void HttpSession::migrateWhenClean() noexcept {
  if (!movable() || move_ != Move::No || phase_ == HttpPhase::Closing || phase_ == HttpPhase::Done)
    return;
  bool headOut = response_ == ResponseState::Body || response_ == ResponseState::Complete;
  // A response already sent with "Connection: close" (an earlier drain without migration)
  // promised the client the end of this connection.
  if (closeAfter_ && headOut) return;
  closeAfter_ = false;
  move_ = Move::Wanted;
  tryMove();
}

// Between requests: idle, or not a byte of the first request yet. A tunnel: both ways open (a
// half-closed one ends soon anyway, and its state would have to travel too).
bool HttpSession::atCleanBoundary() const {
  switch (phase_) {
    case HttpPhase::Idle:
      return true;
    case HttpPhase::Head:
      return tStart_ == 0 && input_.size() == 0;
    case HttpPhase::Tunnel:
      return server_ && !clientEof_ && !serverEof_ && !clientShut_ && !serverShut_;
    default:
      return false;
  }
}

// Stops reading; once every byte read was written on, the connection is offered. Until then the
// session waits (onStreamWritten calls back here), at most kMoveFlushMs.
void HttpSession::tryMove() {
  if (move_ == Move::No || move_ == Move::Offered) return;
  if (!atCleanBoundary()) return;  // Wanted: tried again when the exchange ends
  client_->stopReading();
  if (phase_ == HttpPhase::Tunnel) server_->stopReading();
  bool queued = client_->queuedBytes() > 0 || outCount_ > 0 ||
                (phase_ == HttpPhase::Tunnel && server_->queuedBytes() > 0);
  if (queued) {
    if (move_ != Move::Flushing) {
      move_ = Move::Flushing;
      moveSince_ = uv_now(host_.loop());
    }
    return armTimer();
  }
  offerMove();
}

void HttpSession::offerMove() {
  control::MovingConnection c;
  c.frontend = frontend_->name;
  bool tunnel = phase_ == HttpPhase::Tunnel;
  if (tunnel) {
    c.kind = control::MigrateKind::Tunnel;
    c.backend = backend_->name();
    if (lastServer_ >= 0) c.server = backend_->serverName(lastServer_);
  } else {
    c.kind = control::MigrateKind::Http;
    if (input_.size() > 0) c.input.assign(input_.buffer + input_.offset, input_.size());
  }
  // Duplicates travel; the session's own descriptors close once the receiver took them, which
  // sends nothing (the receiver's copies keep the connections open).
  c.client.reset(fcntl(client_->descriptor(), F_DUPFD_CLOEXEC, 0));
  if (tunnel) c.upstream.reset(fcntl(server_->descriptor(), F_DUPFD_CLOEXEC, 0));
  if (!c.client || (tunnel && !c.upstream)) return stayAfterAll();  // out of descriptors
  move_ = Move::Offered;
  armTimer();  // stops it: nothing times out while the master decides
  host_.offerMigration(this, std::move(c));
}

void HttpSession::migrationAnswered(bool taken) noexcept {
  if (move_ != Move::Offered) return;
  if (taken) {
    // The tunnel's log line is written here, its bytes so far counted; an idle connection has
    // nothing to log (its requests were).
    releaseInput();
    return finish("migrated");
  }
  stayAfterAll();
}

// The connection is served here after all, as any draining connection: its next response says
// "Connection: close", an idle one closes by the drain's rule.
void HttpSession::stayAfterAll() {
  move_ = Move::No;
  closeAfter_ = true;
  timerDue_ = UINT64_MAX;
  if (phase_ == HttpPhase::Tunnel) {
    clientPaused_ = serverPaused_ = false;
    if (int rc = server_->startReading(); rc < 0) return finish(uv_strerror(rc));
    if (int rc = client_->startReading(); rc < 0) return finish(uv_strerror(rc));
    return armTimer();
  }
  if (phase_ == HttpPhase::Idle && input_.size() > 0) {
    // A pipelined request was waiting for the move: served here now.
    phase_ = HttpPhase::Head;
    phaseSince_ = uv_now(host_.loop());
    tStart_ = uv_hrtime();
    armTimer();
    return processRequest();
  }
  phaseSince_ = uv_now(host_.loop());
  armTimer();
  updateClientReading();
}

void HttpSession::startAdopted(std::string_view input) {
  if (!input.empty()) {
    char* buffer = host_.buffers().take();
    std::size_t n = std::min(input.size(), BufferPool::kBufferSize);
    std::memcpy(buffer, input.data(), n);
    input_ = Input{buffer, 0, static_cast<std::uint32_t>(n)};
  }
  // As after a response: idle with its keep-alive time, or straight to the waiting request.
  beginRequest();
}

}  // namespace molt::worker
