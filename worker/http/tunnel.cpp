// HttpSession, tunnel: after a 101 the connection is no longer HTTP; bytes are spliced both ways
// with backpressure and half-closes, under the backend's tunnel timeout, until both sides end.
#include "worker/http/rewrite.hpp"
#include "worker/http/session.hpp"

namespace molt::worker {

void HttpSession::startTunnel(char* buffer, std::uint32_t offset, std::uint32_t end) {
  phase_ = HttpPhase::Tunnel;
  client_->quiet();
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
  clientActive_ = serverActive_ = uv_now(host_.loop());
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

}  // namespace molt::worker
