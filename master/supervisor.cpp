#include "master/supervisor.hpp"

#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "common/log.hpp"
#include "common/process_title.hpp"

namespace molt::master {
namespace {

// A worker that dies this soon after its spawn counts as a quick exit: respawns back off.
constexpr uint64_t kQuickExitMs = 10'000;
constexpr uint64_t kMaxBackoffMs = 10'000;
// From this many failed starts in a row on, a slot is reported (proc, log, sd_notify STATUS).
constexpr unsigned kFailuresReported = 3;
// How long a drained generation's connections have to move before max_old_generations stops
// what is left (a session flushes for at most a second, then the hand-over takes milliseconds).
constexpr uint64_t kMigrationGraceMs = 2'000;

// The identity global.user / global.group name, resolved now (the child may not call getpwnam
// between fork and exec). The master itself stays as it is, so a reload can still bind a
// privileged port. Fails closed: a name that no longer resolves gives an error, never a worker
// left running as the master's own user.
std::optional<WorkerProcess::Credentials> credentialsOf(const common::GlobalConfig& global,
                                                        std::string& error) {
  WorkerProcess::Credentials c;
  if (global.user.empty() && global.group.empty()) return c;
  c.drop = true;
  c.uid = geteuid();
  c.gid = getegid();
  if (!global.user.empty()) {
    passwd* pw = getpwnam(global.user.c_str());
    if (!pw) {
      error = "global.user '" + global.user + "' does not resolve (getpwnam)";
      return std::nullopt;
    }
    c.uid = pw->pw_uid;
    c.gid = pw->pw_gid;
  }
  if (!global.group.empty()) {
    group* gr = getgrnam(global.group.c_str());
    if (!gr) {
      error = "global.group '" + global.group + "' does not resolve (getgrnam)";
      return std::nullopt;
    }
    c.gid = gr->gr_gid;
  }
  return c;
}

}  // namespace

Supervisor::Supervisor(uv_loop_t* loop, std::string workerExe, ListenerSet& listeners,
                       Events events)
    : loop_(loop),
      workerExe_(std::move(workerExe)),
      listeners_(listeners),
      events_(std::move(events)),
      migrator_(loop, Migrator::Hooks{[this] { return current(); },
                                      [this](pid_t pid) -> WorkerProcess* {
                                        for (auto& g : generations_)
                                          for (auto& slot : g->slots())
                                            if (slot.process && slot.process->pid() == pid &&
                                                slot.process->phase() != WorkerPhase::Exited)
                                              return slot.process.get();
                                        return nullptr;
                                      },
                                      [this](WorkerProcess& w, const std::string& what) {
                                        for (auto& g : generations_)
                                          for (auto& slot : g->slots())
                                            if (slot.process.get() == &w)
                                              return reject(*g, w, what);
                                      }}) {
  uv_check_init(loop_, reaper_.get());
  reaper_->data = this;
  uv_timer_init(loop_, enforceTimer_.get());
  enforceTimer_->data = this;
}

Supervisor::~Supervisor() = default;

Generation* Supervisor::current() const {
  for (auto it = generations_.rbegin(); it != generations_.rend(); ++it)
    if ((*it)->phase() == GenerationPhase::Serving) return it->get();
  return nullptr;
}

Generation* Supervisor::newest() const {
  return generations_.empty() ? nullptr : generations_.back().get();
}

Generation& Supervisor::launch(std::unique_ptr<Generation> generation) {
  Generation& ref = *generation;
  generations_.push_back(std::move(generation));
  for (unsigned slot = 0; slot < ref.slots().size(); ++slot) spawnSlot(ref, slot);
  return ref;
}

void Supervisor::adopt(std::unique_ptr<Generation> generation) {
  common::log::info("upgrade: adopted generation {} ({}) with {} workers", generation->id(),
                    phaseName(generation->phase()), generation->liveWorkers());
  bool gone = generation->phase() == GenerationPhase::Gone;
  generations_.push_back(std::move(generation));
  if (gone) reapSoon();
}

void Supervisor::respawnMissing() {
  for (auto& g : generations_) {
    if (g->phase() != GenerationPhase::Serving) continue;
    for (unsigned slot = 0; slot < g->slots().size(); ++slot)
      if (g->slots()[slot].process->pid() <= 0) spawnSlot(*g, slot);
  }
}

WorkerProcess::Handlers Supervisor::handlersFor(Generation& generation) {
  return {
      [this, &generation](WorkerProcess& w, common::ControlMessage&& m) {
        onWorkerMessage(generation, w, std::move(m));
      },
      [this, &generation](WorkerProcess& w, int status) { onWorkerExit(generation, w, status); },
      [this, &generation](WorkerProcess& w, const std::string& what) {
        reject(generation, w, what);
      }};
}

void Supervisor::spawnSlot(Generation& generation, unsigned slot) {
  auto& s = generation.slots()[slot];
  if (!s.process) s.process = std::make_unique<WorkerProcess>(slot, handlersFor(generation));
  std::string error;
  auto credentials = credentialsOf(generation.config().global, error);
  if (!credentials) return failedStart(generation, slot, "not spawned: " + error);
  if (!zygote_.running()) zygote_.start(workerExe_);
  if (int rc = s.process->spawn(loop_, workerExe_, *credentials, &zygote_); rc < 0)
    return failedStart(generation, slot, std::string("spawn: ") + std::strerror(-rc));
  common::log::info("generation {}: worker slot {} started, pid {}", generation.id(), slot,
                    s.process->pid());
  s.process->setCounters(countersFor(generation));
  generation.sendHandover(*s.process);
}

void Supervisor::onWorkerMessage(Generation& generation, WorkerProcess& worker,
                                 common::ControlMessage&& message) {
  if (worker.phase() == WorkerPhase::Exited) return;
  auto decoded = control::decodeFromWorker(message);
  if (!decoded) return reject(generation, worker, "a message the master refuses: " + decoded.error);
  if (auto* ready = std::get_if<control::Ready>(&*decoded.value)) {
    if (ready->pid != worker.pid() || ready->protocol != control::kProtocolVersion)
      return reject(generation, worker,
                    "ready with pid " + std::to_string(ready->pid) + " and protocol " +
                        std::to_string(ready->protocol) + " (expected " +
                        std::to_string(worker.pid()) + " and " +
                        std::to_string(control::kProtocolVersion) + ")");
    if (worker.phase() != WorkerPhase::Spawned) return reject(generation, worker, "a second ready");
    onWorkerReady(generation, worker);
  } else if (auto* stats = std::get_if<control::Stats>(&*decoded.value)) {
    worker.setStats(*stats);
  } else if (auto* changed = std::get_if<control::Changed>(&*decoded.value)) {
    events_.changed(worker, *changed);
  } else if (auto* migrate = std::get_if<control::Migrate>(&*decoded.value)) {
    if (std::string error = migrator_.offer(generation, worker, *migrate); !error.empty())
      return reject(generation, worker, error);
  } else if (auto* adopted = std::get_if<control::Adopted>(&*decoded.value)) {
    if (std::string error = migrator_.answered(worker, *adopted); !error.empty())
      return reject(generation, worker, error);
  }
}

// A worker that sent what no worker sends is broken or compromised: the master stops listening
// to it and kills it; it is then replaced like any worker that died.
void Supervisor::reject(Generation& generation, WorkerProcess& worker, const std::string& what) {
  if (worker.phase() == WorkerPhase::Exited) return;
  std::string shown = what.size() > 300 ? what.substr(0, 300) + "..." : what;
  common::log::error("generation {}: worker slot {} pid {} sent {}; replacing it", generation.id(),
                     worker.slot(), worker.pid(), shown);
  worker.reject();
}

void Supervisor::onWorkerReady(Generation& generation, WorkerProcess& worker) {
  if (worker.phase() != WorkerPhase::Spawned) return;
  worker.setPhase(WorkerPhase::Ready);
  if (generation.phase() == GenerationPhase::Draining) {
    // Respawned into a generation that started draining meanwhile.
    worker.setPhase(WorkerPhase::Draining);
    worker.send(control::Drain{0, migrating()}.encode());
    return;
  }
  if (generation.phase() == GenerationPhase::Starting && generation.allReady()) promote(generation);
}

void Supervisor::promote(Generation& generation) {
  generation.markServing();
  common::log::info("generation {} serving with {} workers", generation.id(),
                    generation.slots().size());
  // Only now is it safe to retire older generations: the new one accepts on every listener.
  for (auto& other : generations_) {
    if (other.get() == &generation || other->phase() == GenerationPhase::Gone) continue;
    if (other->phase() != GenerationPhase::Draining)
      drainGeneration(*other, "replaced");
    else if (migrating() && !other->terminating())
      other->offerAgain();  // what did not move to the previous generation may move to this one
  }
  if (!migrating()) {
    enforceMaxOldGenerations();
  } else {
    // Moves take a moment (a flush of at most a second, then the hand-over): the generations
    // over the limit are stopped after it, with what could not move.
    uv_timer_start(
        enforceTimer_.get(),
        [](uv_timer_t* t) {
          if (auto* self = static_cast<Supervisor*>(t->data)) self->enforceMaxOldGenerations();
        },
        kMigrationGraceMs, 0);
  }
  listeners_.prune();
  updateTitle();
  events_.serving(generation);
}

void Supervisor::drainGeneration(Generation& generation, const char* why) {
  Generation* latest = current() ? current() : &generation;
  common::Millis hardStopAfter = latest->config().global.hardStopAfter;
  generation.drain(loop_, hardStopAfter, migrating() && latest != &generation);
  common::log::info(
      "generation {} draining ({}): {} workers, {} connections left, hard stop in {} s",
      generation.id(), why, generation.liveWorkers(), generation.connections(),
      hardStopAfter.count() / 1000);
  malloc_trim(0);  // the generation's parsed config and tables were just freed
  // Reaped from the check phase: callers may be iterating over the generations.
  if (generation.phase() == GenerationPhase::Gone) reapSoon();
}

bool Supervisor::migrating() const {
  Generation* latest = current();
  return phase_ == SupervisorPhase::Supervising && latest && latest->config().global.migrate;
}

void Supervisor::enforceMaxOldGenerations() {
  Generation* latest = current();
  if (!latest) return;
  unsigned limit = latest->config().global.maxOldGenerations;
  std::vector<Generation*> draining;
  for (auto& g : generations_)
    if (g->phase() == GenerationPhase::Draining && !g->terminating() && g->liveWorkers() > 0)
      draining.push_back(g.get());
  // Oldest first: generations_ is in creation order.
  for (size_t i = 0; draining.size() - i > limit; ++i)
    draining[i]->terminate(loop_,
                           "more than max_old_generations=" + std::to_string(limit) + " draining");
}

void Supervisor::abandon(unsigned id, const std::string& why) {
  for (auto& g : generations_)
    if (g->id() == id) g->abandon(loop_, why);
  reapSoon();
}

// A stats zone for a worker of `generation`: a row per frontend, and per backend of the file with
// as many again (at least kSpareBackendRows) for those the runtime API adds. Null (logged) when
// the zone cannot be made: the worker then serves uncounted.
std::unique_ptr<WorkerCounters> Supervisor::countersFor(const Generation& generation) const {
  const common::Config& config = generation.config();
  auto backends = static_cast<std::uint32_t>(config.backends.size());
  auto layout = shm::StatsLayout::of(static_cast<std::uint32_t>(config.frontends.size()),
                                     backends + std::max(backends, kSpareBackendRows));
  std::string error;
  auto zone = shm::WorkerStats::create(layout, error);
  if (!zone) {
    common::log::error("generation {}: stats zone: {}", generation.id(), error);
    return nullptr;
  }
  std::vector<std::string> names;
  for (const auto& f : config.frontends) names.push_back(f.name);
  return std::make_unique<WorkerCounters>(std::move(zone), std::move(names));
}

// An exited worker's counters, read a last time, stay in the totals.
void Supervisor::retireCounters(WorkerProcess& worker) {
  std::unique_ptr<WorkerCounters> counters = worker.takeCounters();
  if (!counters) return;
  counters->fold();
  counters->addTo(retired_);
}

CounterTotals Supervisor::counterTotals() const {
  CounterTotals totals = retired_;
  for (const auto& g : generations_)
    for (const auto& slot : g->slots())
      if (slot.process && slot.process->counters()) {
        slot.process->counters()->fold();
        slot.process->counters()->addTo(totals);
      }
  return totals;
}

void Supervisor::onWorkerExit(Generation& generation, WorkerProcess& worker, int status) {
  migrator_.workerExited(worker.pid());
  retireCounters(worker);
  if (phase_ != SupervisorPhase::Supervising || generation.phase() == GenerationPhase::Draining) {
    common::log::info("generation {}: worker slot {} pid {} exited ({}), {} workers left",
                      generation.id(), worker.slot(), worker.pid(), describeWaitStatus(status),
                      generation.liveWorkers());
    // Destroyed from the check phase: this call comes from inside the worker's own callback.
    if (generation.workerExited()) reapSoon();
    updateTitle();
    return;
  }
  common::log::warn("generation {}: worker slot {} pid {} died unexpectedly ({})", generation.id(),
                    worker.slot(), worker.pid(), describeWaitStatus(status));
  auto& slot = generation.slots()[worker.slot()];
  // A worker that dies soon after its start counts as a failed start: respawns back off.
  if (monotonicMs() - worker.startedMs() < kQuickExitMs) {
    ++slot.failures;
    slot.lastFailure = "exited " + describeWaitStatus(status) + " " +
                       std::to_string(monotonicMs() - worker.startedMs()) + " ms after its start";
  } else {
    slot.failures = 0;
  }
  scheduleRespawn(generation, worker.slot());
}

void Supervisor::failedStart(Generation& generation, unsigned slot, const std::string& why) {
  auto& s = generation.slots()[slot];
  ++s.failures;
  s.lastFailure = why;
  common::log::error("generation {}: worker slot {} {}", generation.id(), slot, why);
  scheduleRespawn(generation, slot);
}

void Supervisor::scheduleRespawn(Generation& generation, unsigned slot) {
  auto& s = generation.slots()[slot];
  uint64_t delay = s.failures <= 1
                       ? 0
                       : std::min<uint64_t>(kMaxBackoffMs, 100ull << std::min(s.failures - 2, 10u));
  common::log::info("generation {}: respawning slot {} in {} ms", generation.id(), slot, delay);
  if (s.failures >= kFailuresReported) events_.trouble(summary());
  s.respawnTimer = common::UvHandle<uv_timer_t>();
  uv_timer_init(loop_, s.respawnTimer.get());
  s.respawnTarget = {this, &generation, slot};
  s.respawnTimer->data = &s.respawnTarget;
  uv_timer_start(
      s.respawnTimer.get(),
      [](uv_timer_t* h) {
        auto* target = static_cast<Generation::Slot::RespawnTarget*>(h->data);
        if (target) target->supervisor->spawnSlot(*target->generation, target->slot);
      },
      delay, 0);
}

void Supervisor::reapSoon() {
  uv_check_start(reaper_.get(), [](uv_check_t* h) {
    if (auto* self = static_cast<Supervisor*>(h->data)) self->reap();
  });
}

void Supervisor::reap() {
  uv_check_stop(reaper_.get());
  for (auto& g : generations_)
    if (g->phase() == GenerationPhase::Gone) common::log::info("generation {} gone", g->id());
  std::erase_if(generations_, [](const auto& g) { return g->phase() == GenerationPhase::Gone; });
  listeners_.prune();
  updateTitle();
  events_.reaped();
}

void Supervisor::stop(bool graceful, const char* why) {
  phase_ = graceful ? SupervisorPhase::Stopping : SupervisorPhase::Exiting;
  for (auto& g : generations_) {
    if (graceful) {
      if (g->phase() != GenerationPhase::Draining) drainGeneration(*g, why);
    } else {
      g->terminate(loop_, why);
    }
  }
  updateTitle();
}

void Supervisor::clear() {
  phase_ = SupervisorPhase::Exiting;
  generations_.clear();
}

size_t Supervisor::liveWorkers() const {
  size_t live = 0;
  for (const auto& g : generations_) live += g->liveWorkers();
  return live;
}

bool Supervisor::workerAlive(pid_t pid) const {
  for (const auto& g : generations_)
    for (const auto& slot : g->slots())
      if (slot.process && slot.process->pid() == pid &&
          slot.process->phase() != WorkerPhase::Exited)
        return true;
  return false;
}

void Supervisor::publishHealth(const std::string& backend, const std::string& server, bool up) {
  // Draining generations get nothing: their workers hold no check state.
  for (auto& g : generations_)
    if (g->phase() == GenerationPhase::Serving || g->phase() == GenerationPhase::Starting)
      g->setHealth(backend, server, up);
}

std::string Supervisor::summary() const {
  Generation* serving = current();
  size_t draining = 0;
  unsigned oldConnections = 0;
  for (auto& g : generations_)
    if (g->phase() == GenerationPhase::Draining) {
      ++draining;
      oldConnections += g->connections();
    }
  std::string text = serving ? "generation " + std::to_string(serving->id()) + " serving, " +
                                   std::to_string(serving->slots().size()) + " workers"
                             : "no generation serving";
  if (draining)
    text += "; " + std::to_string(draining) + " draining with " + std::to_string(oldConnections) +
            " connections";
  for (const auto& g : generations_)
    for (const auto& slot : g->slots())
      if (slot.failures >= kFailuresReported && g->phase() != GenerationPhase::Draining)
        text += "; generation " + std::to_string(g->id()) + " slot " +
                std::to_string(&slot - g->slots().data()) +
                " failing: " + std::to_string(slot.failures) +
                " failed starts, last: " + slot.lastFailure;
  return text;
}

void Supervisor::updateTitle() const {
  Generation* serving = current();
  size_t draining = 0;
  for (auto& g : generations_)
    if (g->phase() == GenerationPhase::Draining) ++draining;
  std::string title = "master";
  if (serving) title += " gen " + std::to_string(serving->id());
  if (draining) title += " (" + std::to_string(draining) + " draining)";
  if (phase_ == SupervisorPhase::Stopping) title += " stopping";
  common::setProcessTitle(title);
}

}  // namespace molt::master
