// Worker: draining. What a retiring worker gives back, in the order docs/architecture.md and
// DESIGN.md give: listeners, idle connections, the session cache view, tables no connection
// uses, OpenSSL, free heap pages.
#include <malloc.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <random>

#include "common/log.hpp"
#include "common/proc_memory.hpp"
#include "worker/net/spares.hpp"
#include "worker/worker.hpp"

namespace molt::worker {

void Worker::handshakeEnded() noexcept {
  --handshakes_;
  if (phase_ == ServingPhase::Draining) releaseZonesIfQuiet();
}

// A draining worker accepts no new connection, so once no handshake is under way nothing will
// read or write the session cache again: unmap it (MADV_DONTNEED would not free shared pages).
// The TLS contexts go with the zones unless a live connection holds one.
void Worker::releaseZonesIfQuiet() {
  if (handshakes_ > 0) return;
  for (auto& [frontend, context] : tlsContexts_) {
    context->detachZones();
    tlsLeft_.push_back(context);
  }
  tlsContexts_.clear();
  tlsOptions_.clear();
  if (fleet_) common::log::info("draining: closed the fleet tier's redis link");
  fleet_.reset();
  if (!sessionCache_ && !ticketKeys_) return;
  sessionCache_.reset();
  ticketKeys_.reset();
  common::log::info("draining: unmapped the session cache and ticket keys");
}

// Once no TLS connection is left in a draining worker (every context expired), OpenSSL itself
// goes: its providers, algorithm tables and error strings are a few hundred KiB of heap that
// nothing will use again (the worker accepts no new connection).
void Worker::releaseOpensslIfUnused() {
  if (tlsLeft_.empty() || opensslReleased_) return;
  for (const auto& context : tlsLeft_)
    if (!context.expired()) return;
  tlsLeft_.clear();
  opensslReleased_ = true;
  OPENSSL_cleanup();
  common::log::info("draining: no TLS connection left; OpenSSL's global state freed");
}

// No check state in a draining worker: the backends live connections still use copy their
// servers' descriptions out of the generation's server-state zone (releaseTables), every server
// counts as up from then on, and the zone is unmapped (no handshake involved, so at once).
void Worker::detachServerState() {
  serverState_.reset();
}

// What the worker serves with (backends, routers, TLS contexts) is built; what is left of the
// parsed config and the handover bundle go, and the heap is trimmed so that parsing leaves
// nothing resident behind.
void Worker::dropBuildInputs() {
  config_.reset();
  bundle_.reset();
  malloc_trim(0);
}

// A draining worker routes no new connection: its own references to frontends, routers,
// backends and (once the zones are gone) TLS contexts go. What a live connection still uses
// stays, held by that connection; the rest is freed here.
void Worker::releaseTables() {
  std::vector<std::weak_ptr<Backend>> watched(backends_.begin(), backends_.end());
  routers_.clear();
  backendsByName_.clear();
  backends_.clear();
  frontends_.clear();
  size_t kept = 0;
  for (const auto& weak : watched)
    if (auto backend = weak.lock()) {
      backend->detachState();
      ++kept;
    }
  common::log::info("draining: kept {} of {} backends for live connections", kept, watched.size());
}

// Session ends free what only they held: give it back to the kernel shortly after, once per
// burst of ends rather than once per connection (an earlier due time wins over a later one). When
// most connections are parked, the blocks and buffers kept for busy sessions (spares, the buffer
// pool's free buffers) go too: scattered through the heap, they would keep the pages the parked
// connections' sessions freed.
void Worker::trimSoon(std::uint64_t delayMs) {
  if (!trimTimer_.initialized()) {
    uv_timer_init(loop_, trimTimer_.get());
    trimTimer_->data = this;
  }
  if (uv_is_active(trimTimer_.base()) && uv_timer_get_due_in(trimTimer_.get()) <= delayMs) return;
  uv_timer_start(
      trimTimer_.get(),
      [](uv_timer_t* h) {
        auto* self = static_cast<Worker*>(h->data);
        if (!self) return;
        self->parkedSinceTrim_ = 0;
        if (self->parking_.size() > self->sessions_.size()) {
          self->buffers_.releaseFree();
          releaseSpares();
        }
        malloc_trim(0);
      },
      delayMs, 0);
}

// Gives back what a draining worker no longer needs: idle buffers, and free heap pages (glibc
// keeps freed memory otherwise). One malloc_trim of a worker's heap takes well under a
// millisecond, measured and logged, so it does not stall the connections still served.
void Worker::releaseMemory(const std::optional<common::ProcessMemory>& before) {
  buffers_.releaseFree();
  releaseSpares();
  uint64_t start = uv_hrtime();
  malloc_trim(0);
  double trimMs = static_cast<double>(uv_hrtime() - start) / 1e6;
  auto after = common::readProcessMemory(getpid());
  if (!after) return;
  std::uint64_t was = before ? before->privateBytes : after->privateBytes;
  common::log::info(
      "draining: released {} (trim {:.2f} ms); now RSS {} PSS {} private {}, {} connections",
      common::formatBytes(was > after->privateBytes ? was - after->privateBytes : 0), trimMs,
      common::formatBytes(after->rss), common::formatBytes(after->pss),
      common::formatBytes(after->privateBytes), connections());
}

void Worker::drain(const char* why, bool migrate) {
  if (phase_ == ServingPhase::Stopped) return;
  if (phase_ == ServingPhase::Draining) {
    // Again, when a newer generation serves: what did not move yet is offered to it.
    if (migrate && control_ && control_->open()) {
      migrating_ = true;
      offerSessions();
    }
    return;
  }
  common::log::info("draining ({}): {} connections left", why, connections());
  phase_ = ServingPhase::Draining;
  // Parked connections are served by sessions again, which drain (or move) like the others.
  parking_.wakeAll();
  parking_.closeAll();
  migrating_ = migrate && control_ && control_->open();
  auto before = common::readProcessMemory(getpid());
  for (auto& frontend : frontends_) frontend->closeListeners();
  acceptTimer_.close();  // a paused listener is closed with the others
  releaseZonesIfQuiet();
  drainSessions();
  if (migrating_) offerSessions();
  releaseTables();
  detachServerState();
  releaseOpensslIfUnused();
  releaseMemory(before);
  statsDirty_ = true;
  sendStats();
  // The one timer a draining worker keeps besides its connections': the title's countdown.
  uv_timer_init(loop_, titleTimer_.get());
  titleTimer_->data = this;
  uv_timer_start(
      titleTimer_.get(),
      [](uv_timer_t* h) {
        if (auto* self = static_cast<Worker*>(h->data)) self->updateTitle();
      },
      10'000, 10'000);
  exitIfIdle();
}

// Idle pooled server connections close now; each session learns of the drain, idle keep-alive
// ones with a random delay in [0, close_spread) so that clients do not all reconnect at once.
void Worker::drainSessions() {
  serverPool_->closeAll();
  auto spread = static_cast<uint64_t>(closeSpread_.count());
  std::minstd_rand random(static_cast<unsigned>(getpid() ^ uv_hrtime()));
  std::vector<Session*> live;
  for (auto& [raw, session] : sessions_) live.push_back(raw);
  for (Session* session : live) {
    uint64_t delay = spread ? random() % spread : 0;
    session->drain(common::Millis(delay));
  }
}

void Worker::exitIfIdle() {
  if (phase_ == ServingPhase::Draining && connections() == 0) stop("drained");
}

}  // namespace molt::worker
