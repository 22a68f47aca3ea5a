#include "master/generation.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/bundle.hpp"
#include "common/log.hpp"

namespace molt::master {
namespace {

common::UniqueFd dupFd(int fd) {
  return common::UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

// After SIGTERM, a worker gets this long to exit before SIGKILL.
constexpr uint64_t kKillGraceMs = 2'000;

}  // namespace

const char* phaseName(GenerationPhase phase) {
  switch (phase) {
    case GenerationPhase::Starting:
      return "starting";
    case GenerationPhase::Serving:
      return "serving";
    case GenerationPhase::Draining:
      return "draining";
    case GenerationPhase::Gone:
      return "gone";
  }
  return "?";
}

bool Generation::acquireListeners(ListenerSet& listeners, std::vector<std::string>& errors) {
  const auto& frontends = loaded_.config->frontends;
  for (size_t i = 0; i < frontends.size(); ++i) {
    for (size_t j = 0; j < frontends[i].binds.size(); ++j) {
      const common::BindConfig& bind = frontends[i].binds[j];
      // Two port-0 binds are two sockets, each kept by its frontend across reloads.
      std::string key = bind.address.port() != 0 ? bind.text
                                                 : bind.text + " (" + frontends[i].name + " bind " +
                                                       std::to_string(j) + ")";
      std::string error;
      auto listener = listeners.acquire(bind, key, error);
      if (!listener) {
        errors.push_back("frontends[" + std::to_string(i) + "].bind[" + std::to_string(j) +
                         "]: " + error);
        continue;
      }
      listeners_.push_back({frontends[i].name, static_cast<unsigned>(j), std::move(listener)});
    }
  }
  return errors.empty();
}

void Generation::sendHandover(WorkerProcess& worker) const {
  worker.send(control::Hello{control::kProtocolVersion, id_, worker.slot(),
                             static_cast<unsigned>(slots_.size()), dupFd(loaded_.bundle.get())}
                  .encode());
  using Kind = control::ZoneGrantKind;
  // Its own counters: the only zone no other process writes.
  if (const WorkerCounters* counters = worker.counters())
    worker.send(
        control::ZoneGrant{Kind::WorkerStats, counters->zone().layout().size, dupFd(counters->fd())}
            .encode());
  if (sessionCache_)
    worker.send(control::ZoneGrant{Kind::SessionCache, sessionCache_->zone().size(),
                                   dupFd(sessionCache_->zone().fd())}
                    .encode());
  // What workers only read they get read-only: they cannot map it writable.
  if (serverState_) {
    worker.send(control::ZoneGrant{Kind::ServerState, 0, serverState_->tableForWorker()}.encode());
    worker.send(control::ZoneGrant{Kind::ServerLoad, 0, serverState_->loadForWorker()}.encode());
  }
  if (ticketKeys_)
    worker.send(
        control::ZoneGrant{Kind::TicketKeys, 0, ticketKeys_->zone().readOnlyDescriptor()}.encode());
  for (const auto& l : listeners_)
    worker.send(control::ListenerGrant{l.frontend, l.bind, l.listener->bound.text(),
                                       dupFd(l.listener->fd.get())}
                    .encode());
  worker.send(control::Start{}.encode());
  // A worker respawned into a serving generation: the runtime changes made since it was built.
  for (const auto& change : changes_) worker.send(change.encode());
}

std::vector<pid_t> Generation::broadcast(control::Change change) {
  std::vector<pid_t> sent;
  for (auto& slot : slots_) {
    WorkerProcess* w = slot.process.get();
    // A worker still starting gets it after its handover (messages keep their order).
    if (!w || w->phase() == WorkerPhase::Exited) continue;
    w->send(change.encode());
    sent.push_back(w->pid());
  }
  changes_.push_back(std::move(change));
  return sent;
}

// A draining generation's workers need nothing more from the master but their drain and stop
// orders: its parsed config (every server of every backend), handover bundle, server-state zone
// (the workers unmapped theirs), check index and change list go, so that an old generation costs
// the master next to nothing however long a websocket keeps it alive.
void Generation::releaseServingState() {
  auto slim = std::make_unique<common::Config>();
  slim->fileName = loaded_.config->fileName;
  slim->global = loaded_.config->global;
  loaded_.config = std::move(slim);
  loaded_.bundle.reset();
  loaded_.journal.clear();
  loaded_.conflicts.clear();
  serverState_.reset();
  decltype(checked_)().swap(checked_);
  decltype(changes_)().swap(changes_);
  sessionCache_.reset();
  ticketKeys_.reset();
}

uint64_t monotonicMs() {
  return uv_hrtime() / 1'000'000;
}

void Generation::markServing() {
  if (phase_ == GenerationPhase::Starting) phase_ = GenerationPhase::Serving;
}

void Generation::drain(uv_loop_t* loop, common::Millis hardStopAfter, bool migrate) {
  phase_ = GenerationPhase::Draining;
  drainStartedMs_ = monotonicMs();
  auto after = static_cast<uint64_t>(hardStopAfter.count());
  hardStopAtMs_ = drainStartedMs_ + after;
  for (auto& slot : slots_) {
    slot.respawnTimer.close();
    if (!slot.process || slot.process->phase() == WorkerPhase::Exited) continue;
    slot.process->setPhase(WorkerPhase::Draining);
    slot.process->send(control::Drain{after, migrate}.encode());
  }
  releaseServingState();
  if (liveWorkers() == 0) {
    phase_ = GenerationPhase::Gone;
    return;
  }
  armHardStop(loop, after);
}

void Generation::offerAgain() {
  uint64_t now = monotonicMs();
  uint64_t left = hardStopAtMs_ > now ? hardStopAtMs_ - now : 0;
  for (auto& slot : slots_)
    if (slot.process && slot.process->phase() == WorkerPhase::Draining)
      slot.process->send(control::Drain{left, true}.encode());
}

void Generation::abandon(uv_loop_t* loop, const std::string& why) {
  phase_ = GenerationPhase::Draining;
  terminate(loop, why);
  releaseServingState();
  if (liveWorkers() == 0) phase_ = GenerationPhase::Gone;
}

bool Generation::workerExited() {
  bool retiring = phase_ == GenerationPhase::Draining || stopStage_ != StopStage::None;
  if (!retiring || phase_ == GenerationPhase::Gone || liveWorkers() > 0) return false;
  phase_ = GenerationPhase::Gone;
  return true;
}

void Generation::armHardStop(uv_loop_t* loop, uint64_t delayMs) {
  armStopTimer(loop, delayMs, [](uv_timer_t* h) {
    if (auto* self = static_cast<Generation*>(h->data))
      self->terminate(h->loop, "hard_stop_after reached");
  });
}

void Generation::terminate(uv_loop_t* loop, const std::string& why) {
  if (stopStage_ != StopStage::None) return;
  for (auto& slot : slots_) slot.respawnTimer.close();
  if (liveWorkers() == 0) return;
  common::log::info("generation {}: stopping {} workers with {} connections left ({})", id_,
                    liveWorkers(), connections(), why);
  escalate(loop);
}

void Generation::escalate(uv_loop_t* loop) {
  stopStage_ = stopStage_ == StopStage::None ? StopStage::TermSent : StopStage::KillSent;
  int signal = stopStage_ == StopStage::TermSent ? SIGTERM : SIGKILL;
  for (auto& slot : slots_) {
    if (!slot.process || slot.process->phase() == WorkerPhase::Exited) continue;
    if (signal == SIGKILL)
      common::log::warn("generation {}: worker slot {} pid {} ignored SIGTERM; sending SIGKILL",
                        id_, slot.process->slot(), slot.process->pid());
    slot.process->kill(signal);
  }
  if (stopStage_ == StopStage::KillSent) return;
  armStopTimer(loop, kKillGraceMs, [](uv_timer_t* h) {
    if (auto* self = static_cast<Generation*>(h->data)) self->escalate(h->loop);
  });
}

void Generation::armStopTimer(uv_loop_t* loop, uint64_t delayMs, void (*fire)(uv_timer_t*)) {
  if (!stopTimer_.initialized()) {
    uv_timer_init(loop, stopTimer_.get());
    stopTimer_->data = this;
  }
  uv_timer_start(stopTimer_.get(), fire, delayMs, 0);
}

bool Generation::buildServerState(
    const std::function<bool(const std::string&, const std::string&)>& isUp, std::string& error) {
  serverState_ = shm::ServerState::build(*loaded_.config, error);
  if (!serverState_) return false;
  adoptServerState(std::move(serverState_));
  for (const auto& [key, index] : checked_) {
    auto slash = key.find('/');
    if (!isUp(key.substr(0, slash), key.substr(slash + 1)))
      serverState_->live(index).health.store(static_cast<std::uint8_t>(shm::ServerHealth::Down));
  }
  return true;
}

void Generation::adoptServerState(std::unique_ptr<shm::ServerState> state) {
  serverState_ = std::move(state);
  checked_.clear();
  std::uint64_t index = 0;
  for (auto& backend : loaded_.config->backends)
    for (auto& server : backend.servers) {
      if (server.check && !server.disabled) checked_[backend.name + "/" + server.name] = index;
      server.stateRow = index++;
    }
}

void Generation::trackCheck(const std::string& backend, const common::ServerConfig& server) {
  std::string key = backend + "/" + server.name;
  if (server.check && !server.disabled)
    checked_[key] = server.stateRow;
  else
    checked_.erase(key);
}

bool Generation::setHealth(const std::string& backend, const std::string& server, bool up) {
  auto it = checked_.find(backend + "/" + server);
  if (!serverState_ || it == checked_.end()) return false;
  auto health = up ? shm::ServerHealth::Up : shm::ServerHealth::Down;
  serverState_->live(it->second).health.store(static_cast<std::uint8_t>(health));
  return true;
}

bool Generation::allReady() const {
  for (const auto& slot : slots_)
    if (!slot.process || slot.process->phase() != WorkerPhase::Ready) return false;
  return true;
}

size_t Generation::liveWorkers() const {
  size_t live = 0;
  for (const auto& slot : slots_)
    if (slot.process && slot.process->phase() != WorkerPhase::Exited) ++live;
  return live;
}

unsigned Generation::connections() const {
  unsigned total = 0;
  for (const auto& slot : slots_)
    if (slot.process && slot.process->phase() != WorkerPhase::Exited)
      total += slot.process->connections();
  return total;
}

}  // namespace molt::master
