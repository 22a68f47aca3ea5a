// HttpSession: lifecycle, event dispatch, timers, drain and the access log. The request side is
// in request.cpp, the server side in response.cpp, upgrades in tunnel.cpp.
#include "worker/http/session.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

#include "common/log.hpp"
#include "worker/server_pool.hpp"

namespace molt::worker {
namespace {

constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
// Draining, an idle keep-alive connection is closed no sooner than this after its last response:
// a client that reuses it does so at once, and its request may be on the way.
constexpr std::uint64_t kDrainIdleGraceMs = 1'000;

std::uint64_t ms(common::Millis d) {
  return static_cast<std::uint64_t>(d.count());
}

}  // namespace

HttpSession::HttpSession(SessionHost& host, std::shared_ptr<const common::FrontendConfig> frontend,
                         std::shared_ptr<const Router> router, std::unique_ptr<ClientStream> client,
                         bool http2)
    : host_(host),
      frontend_(std::move(frontend)),
      router_(std::move(router)),
      client_(std::move(client)),
      chain_(host.buffers()),
      http2_(http2) {
  client_->setHandler(this);
  uv_timer_init(host_.loop(), timer_.get());
  timer_->data = this;
  clientAddress_ = client_->peer().text();
  std::string_view ip = clientAddress_;
  ip = ip.substr(0, ip.rfind(':'));
  if (ip.size() >= 2 && ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
  clientIp_ = ip;
}

HttpSession::~HttpSession() {
  releaseServer(false);
  releaseInput();
  for (std::size_t i = 0; i < outCount_; ++i) host_.buffers().give(out_[i].buffer);
}

void HttpSession::start() {
  // The first request's head is timed from the accept: a connection that sends nothing is
  // as much a slowloris as one that sends half a head.
  phase_ = HttpPhase::Head;
  phaseSince_ = uv_now(host_.loop());
  armTimer();
  updateClientReading();
}

bool HttpSession::parkable() const noexcept {
  return phase_ == HttpPhase::Idle && !input_.buffer && !server_ && move_ == Move::No &&
         !draining_ && !clientEof_ && outCount_ == 0 && client_ && client_->queuedBytes() == 0;
}

// The timer stays as it is: parked, nothing is due (deadline()), and a timer that fires finds
// that and stops; the next stream's deadline is usually later than the one it is armed for.
std::unique_ptr<ClientStream> HttpSession::parkClient() noexcept {
  client_->stopReading();
  client_->setHandler(nullptr);
  return std::move(client_);
}

void HttpSession::adoptClient(std::unique_ptr<ClientStream> client) {
  client_ = std::move(client);
  client_->setHandler(this);
  clientPaused_ = clientShut_ = false;
  phaseSince_ = clientActive_ = uv_now(host_.loop());
  armTimer();
  updateClientReading();
}

void HttpSession::beginRequest() {
  request_ = RequestState::Head;
  response_ = ResponseState::None;
  requestParser_.reset();
  backend_ = nullptr;
  lastServer_ = -1;
  tried_.clear();
  reused_ = retriedFresh_ = serverReusable_ = headRequest_ = logged_ = parkRefused_ = false;
  closeAfter_ = draining_ && move_ == Move::No;
  status_ = 0;
  bytesIn_ = bytesOut_ = bodySent_ = 0;
  tStart_ = tHead_ = tConnect_ = tResponse_ = 0;
  phaseSince_ = uv_now(host_.loop());
  if (move_ == Move::Wanted) {
    // Between requests: the connection moves now, with what the client already sent.
    phase_ = HttpPhase::Idle;
    return tryMove();
  }
  if (input_.size() > 0) {
    phase_ = HttpPhase::Head;  // a pipelined request was already read
    tStart_ = uv_hrtime();
    armTimer();
    return processRequest();
  }
  releaseInput();
  phase_ = HttpPhase::Idle;
  client_->idle();
  armTimer();
  updateClientReading();
}

// Idle between requests, on an HTTP/1.1 connection with nothing read, queued or owed, while the
// worker serves: all the connection needs is its descriptor, and its TLS state if it has one.
bool HttpSession::mayPark() const noexcept {
  return phase_ == HttpPhase::Idle && !parkRefused_ && !draining_ && move_ == Move::No && client_ &&
         !input_.buffer && !server_ && outCount_ == 0 && !clientEof_ &&
         client_->queuedBytes() == 0 && ms(frontend_->timeouts.keepAlive) > kParkAfterMs &&
         client_->descriptor() >= 0;
}

// A duplicate of the descriptor goes to the host's parking lot, with the stream's state (TLS);
// the session ends, and closing its own descriptor sends nothing (the duplicate keeps the
// connection open), as for a migration.
void HttpSession::park() {
  std::unique_ptr<ParkingLot::Cargo> state;
  if (client_->takeParkState(state)) {
    int fd = fcntl(client_->descriptor(), F_DUPFD_CLOEXEC, 0);
    std::uint64_t keepAliveEnds = phaseSince_ + ms(frontend_->timeouts.keepAlive);
    if (fd >= 0 && host_.park(*frontend_, fd, keepAliveEnds, state)) return finish(nullptr);
    if (fd >= 0) close(fd);
    if (state) client_->restoreParkState(std::move(state));
  }
  parkRefused_ = true;  // served here until its keep-alive time ends or it sends again
  armTimer();
}

void HttpSession::drain(common::Millis idleCloseDelay) noexcept {
  draining_ = true;
  drainCloseAt_ = uv_now(host_.loop()) + ms(idleCloseDelay);
  if (phase_ == HttpPhase::Tunnel || phase_ == HttpPhase::Done) return;
  // A busy connection closes after its current response, which says so. When that response's
  // head is already out without "Connection: close", the client may send its next request as soon
  // as it read it: closing then would cut that request off. The connection goes back to idle
  // instead, where the next request is answered with "Connection: close", or the drain's idle
  // rule closes it.
  bool headOut = response_ == ResponseState::Body || response_ == ResponseState::Complete;
  if (!headOut) closeAfter_ = true;
  armTimer();
}

void HttpSession::onStreamData(ClientStream& stream, char* buffer, std::size_t length) noexcept {
  uint64_t now = uv_now(host_.loop());
  if (phase_ == HttpPhase::Tunnel) return onTunnelData(stream, buffer, length);
  if (&stream == client_.get()) {
    clientActive_ = now;
    if (phase_ == HttpPhase::Closing || phase_ == HttpPhase::Done) {
      host_.buffers().give(buffer);  // lingering: the client's input no longer matters
      return;
    }
    return onClientData(buffer, length);
  }
  serverActive_ = now;
  onServerData(buffer, length);
}

void HttpSession::onStreamEnd(ClientStream& stream, int status) noexcept {
  if (phase_ == HttpPhase::Tunnel) return onTunnelEnd(stream, status);
  if (&stream == client_.get()) return onClientEnd(status);
  onServerEnd(status);
}

void HttpSession::onStreamWritten(ClientStream& stream, int status) noexcept {
  uint64_t now = uv_now(host_.loop());
  bool client = &stream == client_.get();
  if (status < 0) {
    if (client || phase_ == HttpPhase::Tunnel) return finish(uv_strerror(status));
    return onServerFailed("write to server failed");
  }
  (client ? clientActive_ : serverActive_) = now;
  if (move_ == Move::Flushing) return tryMove();
  if (phase_ == HttpPhase::Tunnel) return onTunnelWritten(stream);
  if (client && serverPaused_ && client_->queuedBytes() < kLowWater && server_) {
    serverPaused_ = false;
    server_->startReading();
    armTimer();
  } else if (!client && clientPaused_ && server_ && server_->queuedBytes() < kLowWater) {
    clientPaused_ = false;
    updateClientReading();
    armTimer();
  }
}

void HttpSession::onStreamShutdown(ClientStream& stream, int status) noexcept {
  if (phase_ == HttpPhase::Tunnel) {
    if (status < 0) return finish(uv_strerror(status));
    return onTunnelShutdown(stream);
  }
  if (&stream != client_.get() || phase_ != HttpPhase::Closing) return;
  if (status < 0 || clientEof_) return finish(nullptr);
  clientShut_ = true;
  phaseSince_ = uv_now(host_.loop());
  armTimer();
  updateClientReading();
}

void HttpSession::onStreamConnected(ClientStream& stream, int status) noexcept {
  if (phase_ != HttpPhase::Connecting || &stream != server_.get()) return;
  if (status < 0) return onConnectFailed(uv_strerror(status));
  onServerReady();
}

// The client is read whenever its bytes can be taken: not while earlier ones wait in input_,
// while the server is slow to take a body, or after its end. Reading is not stopped between
// requests, which spares the event loop a pair of epoll_ctl calls per request.
void HttpSession::updateClientReading() {
  if (phase_ == HttpPhase::Tunnel) return;  // the tunnel manages its own reading
  if (move_ == Move::Flushing || move_ == Move::Offered) return client_->stopReading();
  if (input_.buffer && input_.size() == 0) releaseInput();
  bool want = phase_ != HttpPhase::Done && !input_.buffer && !clientPaused_ && !clientEof_;
  if (!want) return client_->stopReading();
  if (int rc = client_->startReading(); rc < 0) finish(uv_strerror(rc));
}

void HttpSession::startClosing() {
  releaseServer(false);
  phase_ = HttpPhase::Closing;
  phaseSince_ = uv_now(host_.loop());
  clientShut_ = false;
  updateClientReading();
  // The FIN goes out after everything queued; input is read and dropped after it (linger).
  if (int rc = client_->shutdown(); rc < 0) return finish(uv_strerror(rc));
  armTimer();
}

// The earliest moment something must happen in the current phase; kNever for none. Activity
// only moves stamps; the timer, armed for an earlier deadline, re-arms when it fires early.
std::uint64_t HttpSession::deadline() const {
  const auto& ft = frontend_->timeouts;
  // On its way to another worker, nothing times out but the wait for queued bytes.
  if (move_ == Move::Offered || !client_) return kNever;  // !client_: parked (HTTP/2)
  if (move_ == Move::Flushing) return moveSince_ + kMoveFlushMs;
  switch (phase_) {
    case HttpPhase::Idle: {
      // The client is still reading the last response (an HTTP/2 stream's tail, or what the
      // socket did not take yet): that is the client timeout's business, not keep-alive's.
      if (client_ && client_->queuedBytes() > 0) return clientActive_ + ms(ft.client);
      std::uint64_t d = phaseSince_ + ms(ft.keepAlive);
      if (mayPark()) return std::min(d, phaseSince_ + kParkAfterMs);
      if (!draining_ || move_ != Move::No) return d;
      return std::min(d, std::max(drainCloseAt_, phaseSince_ + kDrainIdleGraceMs));
    }
    case HttpPhase::Head:
      // Not shortened by a drain, even before the first byte: a new connection's client is about
      // to send its first request (it may be in its TLS handshake), which is answered with
      // "Connection: close".
      return phaseSince_ + ms(ft.httpRequest);
    case HttpPhase::Connecting:
      return phaseSince_ + ms(backend_->config().timeouts.connect);
    case HttpPhase::Exchange: {
      std::uint64_t d = kNever;
      if (waitingOnServer()) d = serverActive_ + ms(backend_->config().timeouts.server);
      if (waitingOnClient()) d = std::min(d, clientActive_ + ms(ft.client));
      return d;
    }
    case HttpPhase::Tunnel: {
      std::uint64_t d = tunnelActive() + ms(backend_->config().timeouts.tunnel);
      return mayParkTunnel() ? std::min(d, tunnelParksAt()) : d;
    }
    case HttpPhase::Closing:
      return clientShut_ ? phaseSince_ + kLingerMs : clientActive_ + ms(ft.client);
    case HttpPhase::Done:
      return kNever;
  }
  return kNever;
}

// The server owes us bytes: a response, or room in its receive window for the request body.
bool HttpSession::waitingOnServer() const {
  if (response_ == ResponseState::Complete || serverPaused_) return false;
  return request_ == RequestState::Complete || clientPaused_ || response_ == ResponseState::Body;
}

// The client owes us bytes: the request body, or reading the response we queued.
bool HttpSession::waitingOnClient() const {
  return (request_ == RequestState::Body && !clientPaused_) || serverPaused_;
}

// Re-arms only for an earlier deadline: a timer already due sooner fires, finds its deadline
// moved and re-arms then. Most requests so never touch the loop's timer heap.
void HttpSession::armTimer() {
  std::uint64_t d = deadline();
  if (d == kNever) {
    timerDue_ = kNever;
    return (void)uv_timer_stop(timer_.get());
  }
  if (timerDue_ <= d) return;
  std::uint64_t now = uv_now(host_.loop());
  timerDue_ = d;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<HttpSession*>(t->data)) self->onTimer();
      },
      d > now ? d - now : 0, 0);
}

void HttpSession::onTimer() {
  timerDue_ = kNever;
  std::uint64_t now = uv_now(host_.loop());
  if (now < deadline()) return armTimer();
  if (move_ == Move::Flushing) return stayAfterAll();  // the peer is not reading
  switch (phase_) {
    case HttpPhase::Idle:
      if (mayPark() && now < phaseSince_ + ms(frontend_->timeouts.keepAlive)) return park();
      return finish(draining_ ? "drain" : nullptr);
    case HttpPhase::Head:
      // Nothing received at all: close quietly, as after a keep-alive timeout.
      if (tStart_ == 0) return finish(draining_ ? "drain" : nullptr);
      return respondLocal(408, "http_request timeout", true);
    case HttpPhase::Connecting:
      return onConnectFailed("timed out");
    case HttpPhase::Exchange:
      if (waitingOnServer() && now >= serverActive_ + ms(backend_->config().timeouts.server)) {
        if (response_ == ResponseState::Waiting) return respondLocal(504, "server timeout", true);
        return finish("server timeout");
      }
      if (response_ == ResponseState::Waiting) return respondLocal(408, "client timeout", true);
      return finish("client timeout");
    case HttpPhase::Tunnel:
      if (now < tunnelActive() + ms(backend_->config().timeouts.tunnel)) return parkTunnel();
      return finish("tunnel timeout");
    case HttpPhase::Closing:
    case HttpPhase::Done:
      return finish(nullptr);
  }
}

std::int64_t HttpSession::sinceStart(std::uint64_t at) const {
  if (at == 0 || tStart_ == 0 || at < tStart_) return -1;
  return static_cast<std::int64_t>((at - tStart_) / 1000);
}

void HttpSession::logExchange(const char* termination) {
  if (logged_) return;
  logged_ = true;
  const HttpHead& head = requestParser_.head();
  AccessRecord r;
  r.frontend = frontend_->name;
  if (backend_) r.backend = backend_->name();
  if (backend_ && lastServer_ >= 0) r.server = backend_->serverName(lastServer_);
  r.client = clientAddress_;
  // A tunnel that was parked: its upgrade's head is in parked_ (a new session's parser has none).
  r.method = parked_ ? parked_->method() : head.method();
  r.target = parked_ ? parked_->target() : head.target();
  r.versionMinor = parked_ ? parked_->versionMinor : head.versionMinor();
  r.http2 = client_->http2();
  r.status = status_;
  r.bytesIn = bytesIn_;
  r.bytesOut = bytesOut_;
  r.headUs = sinceStart(tHead_);
  r.connectUs = sinceStart(tConnect_);
  r.responseUs = sinceStart(tResponse_);
  r.totalUs = sinceStart(uv_hrtime());
  r.reused = reused_;
  if (termination) r.termination = termination;
  r.tlsVersion = client_->tlsVersion();
  r.resumed = client_->tlsResumed();
  host_.accessLog().write(r, frontend_->accessLogFormat);
  count(r);
}

void HttpSession::count(const AccessRecord& r) noexcept {
  shm::FrontendRow& f = host_.frontendStats(frontend_->index);
  shm::bump(f.requests);
  if (r.status >= 100 && r.status <= 599) shm::bump(f.responses[r.status / 100 - 1]);
  shm::bump(f.bytesIn, r.bytesIn);
  shm::bump(f.bytesOut, r.bytesOut);
  if (!backend_) return;
  shm::BackendRow& b = backend_->stats();
  shm::bump(b.requests);
  if (r.responseUs >= 0) shm::recordResponse(b, static_cast<std::uint64_t>(r.responseUs));
}

void HttpSession::finish(const char* reason) noexcept {
  if (phase_ == HttpPhase::Done) return;
  // A request that got as far as its head is logged, however it ended.
  if (request_ != RequestState::Head || phase_ == HttpPhase::Tunnel) logExchange(reason);
  phase_ = HttpPhase::Done;
  timerDue_ = kNever;
  uv_timer_stop(timer_.get());
  if (client_) client_->stopReading();
  releaseServer(false);
  host_.sessionEnded(this);
}

}  // namespace molt::worker
