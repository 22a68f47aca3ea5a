// HttpSession, tunnel: after a 101 the connection is no longer HTTP; bytes are spliced both ways
// with backpressure and half-closes, under the backend's tunnel timeout, until both sides end. A
// tunnel idle both ways is parked (worker/parked_tunnel.hpp) and served on by a new session when
// it wakes.
#include <fcntl.h>
#include <unistd.h>

#include "worker/http/rewrite.hpp"
#include "worker/http/session.hpp"

namespace molt::worker {

void HttpSession::startTunnel(char* buffer, std::uint32_t offset, std::uint32_t end) {
  phase_ = HttpPhase::Tunnel;
  router_.reset();  // a tunnel routes nothing more: a draining worker may free its tables
  status_ = 101;
  tResponse_ = uv_hrtime();
  serverReusable_ = false;
  chain_.clear();
  writeResponseHead(responseParser_.head(), ResponseFraming{}, chain_);
  bytesOut_ += chain_.size();
  queueOut(chain_);
  if (offset < end) {
    bytesOut_ += end - offset;
    queueOut(BufferSlice{buffer, offset, end - offset});
  } else {
    host_.buffers().give(buffer);
  }
  if (!flushOut()) return;
  // Bytes the client sent after its request head already belong to the new protocol.
  if (input_.size() > 0) {
    BufferSlice early{input_.buffer, input_.offset, input_.size()};
    bytesIn_ += early.length;
    input_ = Input{};
    if (int rc = server_->write({&early, 1}); rc < 0) return finish(uv_strerror(rc));
  }
  releaseInput();
  clientPaused_ = serverPaused_ = false;
  serverEof_ = clientShut_ = serverShut_ = false;
  phaseSince_ = clientActive_ = serverActive_ = uv_now(host_.loop());
  if (int rc = server_->startReading(); rc < 0) return finish(uv_strerror(rc));
  armTimer();
  if (clientEof_) return onTunnelEnd(*client_, UV_EOF);  // the client half-closed already
  if (int rc = client_->startReading(); rc < 0) return finish(uv_strerror(rc));
  if (move_ == Move::Wanted) tryMove();  // upgraded while its worker drains
}

void HttpSession::onTunnelData(ClientStream& from, char* buffer, std::size_t length) {
  bool fromClient = &from == client_.get();
  ClientStream& to = fromClient ? static_cast<ClientStream&>(*server_) : *client_;
  (fromClient ? clientActive_ : serverActive_) = uv_now(host_.loop());
  (fromClient ? bytesIn_ : bytesOut_) += length;
  tlsBusy_ = false;
  BufferSlice slice{buffer, 0, static_cast<std::uint32_t>(length)};
  if (int rc = to.write({&slice, 1}); rc < 0) return finish(uv_strerror(rc));
  if (to.queuedBytes() > kHighWater) {
    from.stopReading();
    (fromClient ? clientPaused_ : serverPaused_) = true;
  }
}

void HttpSession::onTunnelEnd(ClientStream& from, int status) {
  if (status != UV_EOF) return finish(uv_strerror(status));
  bool fromClient = &from == client_.get();
  (fromClient ? clientEof_ : serverEof_) = true;
  ClientStream& to = fromClient ? static_cast<ClientStream&>(*server_) : *client_;
  // The FIN follows the bytes already queued, so none is lost behind it.
  if (int rc = to.shutdown(); rc < 0) finish(uv_strerror(rc));
}

void HttpSession::onTunnelWritten(ClientStream& to) {
  bool toClient = &to == client_.get();
  bool& sourcePaused = toClient ? serverPaused_ : clientPaused_;
  bool sourceEof = toClient ? serverEof_ : clientEof_;
  if (!sourcePaused || to.queuedBytes() >= kLowWater) return;
  sourcePaused = false;
  if (sourceEof) return;
  ClientStream& source = toClient ? static_cast<ClientStream&>(*server_) : *client_;
  if (int rc = source.startReading(); rc < 0) finish(uv_strerror(rc));
}

void HttpSession::onTunnelShutdown(ClientStream& to) {
  (&to == client_.get() ? clientShut_ : serverShut_) = true;
  if (clientShut_ && serverShut_) finish(nullptr);
}

// Idle both ways, with both open, nothing paused or queued, while the worker serves: all the
// tunnel needs is its two descriptors, and a TLS client's state.
bool HttpSession::mayParkTunnel() const noexcept {
  return phase_ == HttpPhase::Tunnel && !parkRefused_ && !tlsBusy_ && !draining_ &&
         move_ == Move::No && client_ && server_ && client_->descriptor() >= 0 &&
         server_->descriptor() >= 0 && !clientEof_ && !serverEof_ && !clientShut_ && !serverShut_ &&
         !clientPaused_ && !serverPaused_ && outCount_ == 0 && client_->queuedBytes() == 0 &&
         server_->queuedBytes() == 0 &&
         static_cast<std::uint64_t>(backend_->config().timeouts.tunnel.count()) > kParkAfterMs;
}

// Duplicates of both descriptors go to the host with what the next session needs; the session
// ends without its log line (written when the tunnel ends) and without counting its server's
// connection closed (the parked tunnel counts it).
void HttpSession::parkTunnel() {
  if (!parked_) {
    const HttpHead& head = requestParser_.head();
    try {
      parked_ = std::make_unique<ParkedTunnel>(frontend_, backend_);
      parked_->http = true;
      parked_->request.append(head.method()).append(head.target());
    } catch (const std::bad_alloc&) {
      parked_.reset();
      parkRefused_ = true;
      return armTimer();
    }
    parked_->methodLength = static_cast<std::uint32_t>(head.method().size());
    parked_->versionMinor = head.versionMinor();
  }
  ParkedTunnel& t = *parked_;
  // A TLS client parks with its OpenSSL state, once nothing waits in it.
  if (client_->secure() && !client_->takeParkState(t.clientTls)) {
    tlsBusy_ = true;  // tried again once the tunnel is quiet after its next bytes
    return armTimer();
  }
  t.serverIndex = serverIndex_;
  t.clientActive = clientActive_;
  t.serverActive = serverActive_;
  t.lastServer = lastServer_;
  t.reused = reused_;
  t.bytesIn = bytesIn_;
  t.bytesOut = bytesOut_;
  t.tStart = tStart_;
  t.tHead = tHead_;
  t.tConnect = tConnect_;
  t.tResponse = tResponse_;
  std::uint64_t deadline =
      tunnelActive() + static_cast<std::uint64_t>(backend_->config().timeouts.tunnel.count());
  int clientFd = fcntl(client_->descriptor(), F_DUPFD_CLOEXEC, 0);
  int serverFd = clientFd < 0 ? -1 : fcntl(server_->descriptor(), F_DUPFD_CLOEXEC, 0);
  if (serverFd >= 0 && host_.parkTunnel(clientFd, serverFd, parked_, deadline)) {
    serverIndex_ = -1;
    logged_ = true;
    return finish(nullptr);
  }
  if (clientFd >= 0) close(clientFd);
  if (serverFd >= 0) close(serverFd);
  parked_->serverIndex = -1;  // still this session's
  if (parked_->clientTls) client_->restoreParkState(std::move(parked_->clientTls));
  parkRefused_ = true;  // served here until it ends
  armTimer();
}

void HttpSession::resumeTunnel(std::unique_ptr<PlainStream> server,
                               std::unique_ptr<ParkedTunnel> tunnel) {
  ParkedTunnel& t = *tunnel;
  phase_ = HttpPhase::Tunnel;
  request_ = RequestState::Complete;
  response_ = ResponseState::Complete;
  router_.reset();
  backend_ = t.backend;
  serverIndex_ = std::exchange(t.serverIndex, -1);
  lastServer_ = t.lastServer;
  reused_ = t.reused;
  status_ = 101;
  bytesIn_ = t.bytesIn;
  bytesOut_ = t.bytesOut;
  tStart_ = t.tStart;
  tHead_ = t.tHead;
  tConnect_ = t.tConnect;
  tResponse_ = t.tResponse;
  clientActive_ = t.clientActive;
  serverActive_ = t.serverActive;
  phaseSince_ = uv_now(host_.loop());
  parked_ = std::move(tunnel);
  server_ = std::move(server);
  server_->setHandler(this);
  clientPaused_ = serverPaused_ = false;
  clientEof_ = serverEof_ = clientShut_ = serverShut_ = false;
  if (int rc = server_->startReading(); rc < 0) return finish(uv_strerror(rc));
  if (int rc = client_->startReading(); rc < 0) return finish(uv_strerror(rc));
  armTimer();  // at once when the tunnel timeout passed while parked
}

}  // namespace molt::worker
