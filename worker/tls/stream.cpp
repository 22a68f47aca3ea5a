#include "worker/tls/stream.hpp"

#include <algorithm>
#include <new>

namespace molt::worker {
namespace {

void giveBack(BufferPool& pool, std::span<const BufferSlice> slices) {
  for (const auto& s : slices) pool.give(s.buffer);
}

}  // namespace

TlsStream::TlsStream(uv_loop_t* loop, BufferPool& buffers,
                     std::shared_ptr<const TlsContext> context, HandshakeObserver& observer)
    : buffers_(buffers),
      inner_(loop, buffers),
      engine_(buffers, std::move(context)),
      observer_(observer) {
  attach(loop);
  observer_.handshakeStarted();
}

TlsStream::TlsStream(uv_loop_t* loop, BufferPool& buffers, std::unique_ptr<ParkedTls> parked,
                     HandshakeObserver& observer)
    : buffers_(buffers),
      inner_(loop, buffers),
      engine_(buffers, std::move(parked->context), std::move(parked->ssl)),
      observer_(observer),
      handshaking_(false) {
  attach(loop);
}

void TlsStream::attach(uv_loop_t* loop) noexcept {
  inner_.setHandler(this);
  engine_.setWaker(this);
  uv_idle_init(loop, deferred_.get());
  deferred_->data = this;
}

ParkedTls::~ParkedTls() {
  if (ssl) SSL_set_shutdown(ssl.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

// Only between exchanges, with nothing read ahead or owed either way: parked, nothing reads the
// socket, so bytes kept here would wait for a wake-up that never comes.
bool TlsStream::takeParkState(std::unique_ptr<ParkingLot::Cargo>& state) noexcept {
  if (handshaking_ || !early_.empty() || inputEnded_ || endReported_ || inner_.queuedBytes() != 0 ||
      !engine_.quiescent())
    return false;
  auto parked =
      std::unique_ptr<ParkedTls>(new (std::nothrow) ParkedTls(nullptr, engine_.context()));
  if (!parked) return false;
  inner_.stopReading();
  reading_ = false;
  parked->ssl = engine_.release();
  state = std::move(parked);
  return true;
}

void TlsStream::restoreParkState(std::unique_ptr<ParkingLot::Cargo> state) noexcept {
  auto* parked = static_cast<ParkedTls*>(state.get());
  engine_.adopt(std::move(parked->ssl));
  engine_.setWaker(this);
  startReading();  // as it was: an idle session reads for the next request
}

// A connection that closes says close_notify, unless something it queued is still unwritten (it
// would be overtaken), its TLS failed, or its client closed its socket without one (nobody reads
// it): a client must be able to tell the end from a truncation (RFC 8446, 6.1), at a keep-alive
// timeout or a drain as much as after "Connection: close". A client's close_notify is answered.
TlsStream::~TlsStream() {
  *alive_ = false;
  bool peerGone = inputEnded_ && engine_.phase() != TlsPhase::Closed;
  if (!handshaking_ && !peerGone && engine_.valid() && engine_.phase() != TlsPhase::Failed &&
      inner_.queuedBytes() == 0)
    engine_.sayCloseNotify(inner_.descriptor());
  if (handshaking_) observer_.handshakeEnded();
  for (const auto& write : early_) giveBack(buffers_, write);
}

int TlsStream::accept(uv_stream_t* listener) noexcept {
  if (!engine_.valid()) return UV_ENOMEM;
  if (int rc = inner_.accept(listener); rc < 0) return rc;
  return inner_.startReading();  // the handshake reads whether or not the session does yet
}

int TlsStream::startReading() noexcept {
  reading_ = true;
  scheduleDeferred();  // records may already wait in the engine; delivered from the loop
  return 0;
}

void TlsStream::stopReading() noexcept {
  reading_ = false;
  if (!handshaking_) inner_.stopReading();
}

std::size_t TlsStream::queuedBytes() const noexcept {
  std::size_t early = 0;
  for (const auto& write : early_)
    for (const auto& s : write) early += s.length;
  return inner_.queuedBytes() + engine_.pendingOutput() + early;
}

int TlsStream::write(std::span<const BufferSlice> slices) noexcept {
  if (engine_.phase() == TlsPhase::Failed || engine_.phase() == TlsPhase::ShutdownSent) {
    giveBack(buffers_, slices);
    return UV_EPIPE;
  }
  if (handshaking_) {
    early_.emplace_back(slices.begin(), slices.end());  // encrypted once the handshake ends
    return 0;
  }
  return encrypt(slices);
}

int TlsStream::encrypt(std::span<const BufferSlice> slices) noexcept {
  int rc = 0;
  for (const auto& s : slices)
    if (rc == 0 && engine_.write({s.buffer + s.offset, s.length}).status != TlsStatus::Ok)
      rc = UV_EPROTO;
  giveBack(buffers_, slices);
  return rc < 0 ? rc : flush();
}

// Like PlainStream, a write that goes out at once reports nothing; one that waits reports
// through onStreamWritten when the socket took it (queuedBytes() dropped).
int TlsStream::flush() noexcept {
  while (engine_.pendingOutput() > 0) {
    BufferSlice out[kMaxSlices];
    std::size_t count = 0;
    while (count < kMaxSlices && engine_.takeOutput(out[count])) ++count;
    if (int rc = inner_.write({out, count}); rc < 0) return rc;
  }
  return 0;
}

int TlsStream::shutdown() noexcept {
  if (!handshaking_) {
    engine_.shutdown();  // close_notify, so the client can tell truncation from the end
    flush();
  }
  return inner_.shutdown();
}

void TlsStream::onStreamData(ClientStream&, char* buffer, std::size_t length) noexcept {
  engine_.feed(buffer, length);
  handshakeDue_ = handshaking_;
  pump();
}

void TlsStream::onStreamEnd(ClientStream&, int status) noexcept {
  inputEnded_ = true;
  inputStatus_ = status;
  pump();
}

void TlsStream::onStreamWritten(ClientStream&, int status) noexcept {
  if (handler_) handler_->onStreamWritten(*this, status);  // may destroy this
}

void TlsStream::onStreamShutdown(ClientStream&, int status) noexcept {
  if (handler_) handler_->onStreamShutdown(*this, status);
}

void TlsStream::scheduleDeferred() noexcept {
  uv_idle_start(deferred_.get(), [](uv_idle_t* h) {
    uv_idle_stop(h);
    if (auto* self = static_cast<TlsStream*>(h->data)) self->pump();
  });
}

// Everything that may call the session: only from loop callbacks, and never touching `this`
// once the session may have destroyed it.
void TlsStream::pump() noexcept {
  if (endReported_) return;
  if (handshaking_ && !advanceHandshake()) return;
  if (!decrypt()) return;
  if (inputEnded_ && !endReported_ && (reading_ || inputStatus_ != UV_EOF)) {
    endReported_ = true;
    if (handler_) handler_->onStreamEnd(*this, inputStatus_);
    return;
  }
  if (notifyWritten_ && handler_) {
    notifyWritten_ = false;
    handler_->onStreamWritten(*this, 0);  // may destroy this: the last thing done
  }
}

// OpenSSL is asked again only when it can get further: bytes came, or the fleet lookup it waited
// for ended. A call that can only find no input still costs a pass through its state machine.
bool TlsStream::advanceHandshake() noexcept {
  if (handshakeDue_) {
    handshakeDue_ = false;
    TlsStatus status = engine_.handshake();
    flush();
    if (status == TlsStatus::Failed || engine_.phase() == TlsPhase::Failed) {
      fail(UV_EPROTO);
      return false;
    }
  }
  if (engine_.phase() == TlsPhase::Handshaking) {
    if (inputEnded_) fail(inputStatus_ == UV_EOF ? UV_ECONNRESET : inputStatus_);
    return false;
  }
  return finishHandshake();
}

bool TlsStream::finishHandshake() noexcept {
  handshaking_ = false;
  observer_.handshakeEnded();
  if (stats_) shm::bump(engine_.resumed() ? stats_->tlsResumed : stats_->tlsFull);
  std::vector<std::vector<BufferSlice>> early = std::move(early_);
  early_.clear();
  notifyWritten_ = !early.empty();
  for (std::size_t i = 0; i < early.size(); ++i) {
    if (encrypt(early[i]) < 0) {
      for (std::size_t j = i + 1; j < early.size(); ++j) giveBack(buffers_, early[j]);
      fail(UV_EPROTO);
      return false;
    }
  }
  if (!reading_) inner_.stopReading();
  return true;
}

bool TlsStream::decrypt() noexcept {
  std::weak_ptr<bool> alive = alive_;
  while (reading_) {
    char* buffer = buffers_.take();
    TlsResult r = engine_.read({buffer, BufferPool::kBufferSize});
    flush();  // reading may produce output (tickets, key updates, alerts)
    if (r.status == TlsStatus::Ok && r.bytes > 0) {
      if (handler_) handler_->onStreamData(*this, buffer, r.bytes);
      if (alive.expired()) return false;
      continue;
    }
    buffers_.give(buffer);
    if (r.status == TlsStatus::Closed) {
      inputEnded_ = true;
      inputStatus_ = UV_EOF;
    } else if (r.status == TlsStatus::Failed) {
      fail(UV_EPROTO);
      return false;
    }
    break;
  }
  if (reading_ && !inputEnded_) inner_.startReading();
  return true;
}

void TlsStream::fail(int status) noexcept {
  flush();  // an alert, if the engine made one
  inner_.stopReading();
  if (endReported_) return;
  endReported_ = true;
  if (handler_) handler_->onStreamEnd(*this, status);
}

}  // namespace molt::worker
