// Accepting connections: a session per accepted client, and the pause that keeps a worker near its
// descriptor limit from losing the connections the kernel queued for it.
#include <unistd.h>

#include <filesystem>

#include "common/log.hpp"
#include "tls/settings.hpp"
#include "worker/http/session.hpp"
#include "worker/http2/session.hpp"
#include "worker/net/plain_stream.hpp"
#include "worker/tcp/session.hpp"
#include "worker/worker.hpp"

namespace molt::worker {

void Worker::accept(Frontend& frontend, uv_stream_t* listener) {
  std::unique_ptr<ClientStream> client;
  const common::BindConfig& bind = frontend.bindOf(listener);
  int rc;
  if (bind.tls) {
    auto tls = std::make_unique<TlsStream>(loop_, buffers_, tlsContexts_.at(&frontend), *this);
    tls->countHandshakesIn(&frontendStats(frontend.config().index));
    rc = tls->accept(listener);
    if (rc == 0 && frontend.config().mode == common::Mode::Http)
      tls::setAlpn(tls->engine().ssl(), tls::alpnFor(bind));
    client = std::move(tls);
  } else {
    auto plain = std::make_unique<PlainStream>(loop_, buffers_);
    rc = plain->accept(listener);
    client = std::move(plain);
  }
  if (rc < 0) {
    // Another worker sharing the socket took it first: not an error.
    if (rc != UV_EAGAIN)
      common::log::warn("uv_accept({}): {}", frontend.config().name, uv_strerror(rc));
    return;
  }
  shm::bump(frontendStats(frontend.config().index).connections);
  std::unique_ptr<Session> session = makeSession(frontend, std::move(client), bind.h2);
  Session* raw = session.get();
  sessions_.emplace(raw, std::move(session));
  connectionCountChanged();
  raw->start();
  keepDescriptorsInReserve();
}

// A worker near its descriptor limit stops accepting before accept() fails: libuv would then
// accept and close every pending connection (its EMFILE trick), losing them. Paused, the kernel
// keeps them queued for this worker's next turn or another worker. Each session holds at most
// two descriptors and each pooled connection one, so descriptors are counted only when those
// could come near the limit.
void Worker::keepDescriptorsInReserve() {
  std::size_t estimate =
      sessions_.size() * 2 + parking_.descriptors() + serverPool_->idleCount() + kDescriptorReserve;
  if (estimate < descriptorLimit_ || descriptorsInUse() + kDescriptorReserve < descriptorLimit_)
    return;
  pauseAccepting("few descriptors left");
}

// Counted in /proc/self/fd (the lowest free number says nothing of the holes above it).
std::size_t Worker::descriptorsInUse() const {
  std::error_code error;
  std::size_t count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error))
    ++count;
  return error ? descriptorLimit_ : count;
}

void Worker::acceptFailed(Frontend& frontend, int status) {
  pauseAccepting(
      fmt::format("accept on frontend {}: {}", frontend.config().name, uv_strerror(status)));
}

// Logged at most once per kPauseLogMs; retried every kPauseRetryMs until enough descriptors are
// free again.
void Worker::pauseAccepting(const std::string& why) {
  if (phase_ != ServingPhase::Serving) return;
  for (auto& frontend : frontends_) frontend->pauseAccepting();
  uint64_t now = uv_now(loop_);
  if (now >= nextPauseLogMs_) {
    common::log::warn(
        "{}: accepting paused ({} of {} descriptors in use, {} connections); new "
        "connections wait in the kernel's queue",
        why, descriptorsInUse(), descriptorLimit_, connections());
    nextPauseLogMs_ = now + kPauseLogMs;
  }
  if (!acceptTimer_.initialized()) {
    uv_timer_init(loop_, acceptTimer_.get());
    acceptTimer_->data = this;
  }
  uv_timer_start(
      acceptTimer_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<Worker*>(t->data)) self->resumeAcceptingIfRoom();
      },
      kPauseRetryMs, 0);
}

void Worker::resumeAcceptingIfRoom() {
  if (phase_ != ServingPhase::Serving) return;
  if (descriptorsInUse() + 2 * kDescriptorReserve >= descriptorLimit_)
    return pauseAccepting("still few descriptors left");
  bool resumed = false;
  for (auto& frontend : frontends_) {
    resumed = resumed || frontend->paused();
    if (int rc = frontend->resumeAccepting(loop_); rc < 0)
      return pauseAccepting(fmt::format("resume accepting on frontend {}: {}",
                                        frontend->config().name, uv_strerror(rc)));
  }
  if (resumed)
    common::log::info("accepting again ({} of {} descriptors in use, {} connections)",
                      descriptorsInUse(), descriptorLimit_, connections());
}

void Worker::startHttp2(std::unique_ptr<ClientStream> client,
                        std::shared_ptr<const common::FrontendConfig> frontend,
                        std::shared_ptr<const Router> router, std::string_view input) noexcept {
  auto session = std::make_unique<Http2Session>(*this, std::move(frontend), std::move(router),
                                                std::move(client));
  Http2Session* raw = session.get();
  sessions_.emplace(raw, std::move(session));
  connectionCountChanged();
  raw->startWith(input);
}

// A frontend's keep-alive connections, in clear and TLS, share its line in the lot: one
// keep-alive time, so their deadlines come in order.
bool Worker::park(const common::FrontendConfig& config, int fd, std::uint64_t deadline,
                  std::unique_ptr<ParkingLot::Cargo>& state) noexcept {
  if (phase_ != ServingPhase::Serving) return false;
  Frontend* frontend = frontendNamed(config.name);
  if (!frontend || frontend->config().mode != common::Mode::Http) return false;
  bool taken = state ? parking_.park(fd, -1, frontend, deadline, state)
                     : parking_.park(fd, frontend, deadline);
  if (!taken) return false;
  parked();
  return true;
}

// A tunnel's line in the lot is its backend's: one tunnel timeout, so deadlines come in order.
bool Worker::parkTunnel(int clientFd, int serverFd, std::unique_ptr<ParkedTunnel>& tunnel,
                        std::uint64_t deadline) noexcept {
  if (phase_ != ServingPhase::Serving) return false;
  std::unique_ptr<ParkingLot::Cargo> cargo = std::move(tunnel);
  const void* owner = static_cast<ParkedTunnel*>(cargo.get())->backend.get();
  if (!parking_.park(clientFd, serverFd, owner, deadline, cargo)) {
    tunnel.reset(static_cast<ParkedTunnel*>(cargo.release()));
    return false;
  }
  parked();
  return true;
}

// The sessions parked connections no longer need are freed memory glibc keeps: give it back to
// the kernel a second after a burst of parks, and a few seconds after a few (the end of a burst).
void Worker::parked() noexcept {
  trimSoon(++parkedSinceTrim_ >= 64 ? 1000 : 5000);
  connectionCountChanged();
}

// The client spoke again (or closed): served as a connection that just finished a response, with
// the worker's current routes and, for TLS, the connection's OpenSSL state (no handshake).
// Nothing was read from it yet. A TLS connection is also handed back at its keep-alive time.
void Worker::unpark(ParkingLot::Parked parked) noexcept {
  if (parked.peer >= 0) return unparkTunnel(std::move(parked));
  auto& frontend = *static_cast<Frontend*>(const_cast<void*>(parked.owner));
  auto router = routers_.find(&frontend);
  std::unique_ptr<ParkedTls> state(static_cast<ParkedTls*>(parked.cargo.release()));  // or none
  if (state && (uv_now(loop_) >= parked.deadline || router == routers_.end()))
    return closeParkedTls(parked.fd, std::move(state));
  int rc = UV_ENOENT;
  std::unique_ptr<ClientStream> client;
  if (router != routers_.end()) client = adoptParked(parked.fd, std::move(state), rc);
  if (rc < 0) {
    common::log::warn("serving a parked connection of frontend {} again: {}",
                      frontend.config().name, uv_strerror(rc));
    close(parked.fd);
    return connectionCountChanged();
  }
  auto session = std::make_unique<HttpSession>(*this, frontend.sharedConfig(), router->second,
                                               std::move(client));
  HttpSession* raw = session.get();
  sessions_.emplace(raw, std::move(session));
  connectionCountChanged();
  raw->startAdopted({});
}

// The client stream of a parked connection on descriptor `fd`: TLS from its state (no
// handshake), else plain. `rc` is 0 or a libuv error (the descriptor is then still the caller's).
std::unique_ptr<ClientStream> Worker::adoptParked(int fd, std::unique_ptr<ParkedTls> tls,
                                                  int& rc) noexcept {
  if (tls) {
    auto stream = std::make_unique<TlsStream>(loop_, buffers_, std::move(tls), *this);
    rc = stream->adopt(fd);
    return stream;
  }
  auto stream = std::make_unique<PlainStream>(loop_, buffers_);
  rc = stream->adopt(fd);
  return stream;
}

// A parked TLS connection whose keep-alive time is over closes as a session would close it, with
// close_notify.
void Worker::closeParkedTls(int fd, std::unique_ptr<ParkedTls> state) noexcept {
  TlsEngine(buffers_, std::move(state->context), std::move(state->ssl)).sayCloseNotify(fd);
  close(fd);
  connectionCountChanged();
}

// A parked tunnel: a session of the kind that parked it takes it on, with what it kept.
void Worker::unparkTunnel(ParkingLot::Parked parked) noexcept {
  std::unique_ptr<ParkedTunnel> tunnel(static_cast<ParkedTunnel*>(parked.cargo.release()));
  int rc;
  std::unique_ptr<ClientStream> client = adoptParked(
      parked.fd, std::unique_ptr<ParkedTls>(static_cast<ParkedTls*>(tunnel->clientTls.release())),
      rc);
  auto server = std::make_unique<PlainStream>(loop_, buffers_);
  if (rc < 0) close(parked.fd);
  int serverRc = server->adopt(parked.peer);
  if (serverRc < 0) close(parked.peer);
  if (rc < 0 || serverRc < 0) {
    common::log::warn("serving a parked tunnel of frontend {} again: {}", tunnel->frontend->name,
                      uv_strerror(rc < 0 ? rc : serverRc));
    return connectionCountChanged();  // both close with their streams
  }
  std::shared_ptr<const common::FrontendConfig> frontend = tunnel->frontend;
  if (tunnel->http) {
    auto session = std::make_unique<HttpSession>(*this, frontend, nullptr, std::move(client));
    HttpSession* raw = session.get();
    sessions_.emplace(raw, std::move(session));
    connectionCountChanged();
    return raw->resumeTunnel(std::move(server), std::move(tunnel));
  }
  std::shared_ptr<Backend> backend = tunnel->backend;
  auto session = std::make_unique<TcpSession>(*this, frontend, backend, std::move(client));
  TcpSession* raw = session.get();
  sessions_.emplace(raw, std::move(session));
  connectionCountChanged();
  raw->resume(std::move(server), std::move(tunnel));
}

void Worker::http2Changed(int connections, int streams) noexcept {
  http2Connections_ += connections;
  http2Streams_ += streams;
  connectionCountChanged();
}

std::unique_ptr<Session> Worker::makeSession(Frontend& frontend,
                                             std::unique_ptr<ClientStream> client, bool http2) {
  if (frontend.config().mode == common::Mode::Http)
    return std::make_unique<HttpSession>(*this, frontend.sharedConfig(), routers_.at(&frontend),
                                         std::move(client), http2);
  return std::make_unique<TcpSession>(*this, frontend.sharedConfig(), frontend.defaultBackend(),
                                      std::move(client));
}

}  // namespace molt::worker
