#include "master/master.hpp"

#include <malloc.h>

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.hpp"
#include "common/process_title.hpp"

namespace molt::master {
namespace {

// A worker that dies this soon after its spawn counts as a quick exit: respawns back off.
constexpr uint64_t kQuickExitMs = 10'000;
constexpr uint64_t kMaxBackoffMs = 10'000;
constexpr int kSignals[] = {SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR2};

}  // namespace

Master::Master(MasterOptions options)
    : options_(std::move(options)), api_(&loop_, [this](const nlohmann::json& r, ApiReply reply) {
        handleApi(r, std::move(reply));
      }) {
  uv_loop_init(&loop_);
  tlsZones_ = std::make_unique<TlsZones>(&loop_);
  checker_ = std::make_unique<HealthChecker>(
      &loop_, [this](const HealthEvent& event) { onHealthChange(event); });
  uv_check_init(&loop_, reaper_.get());
  reaper_->data = this;
  uv_timer_init(&loop_, reloadTimer_.get());
  reloadTimer_->data = this;
  sigset_t handled;
  sigemptyset(&handled);
  for (int signal : kSignals) {
    common::UvHandle<uv_signal_t> handle;
    uv_signal_init(&loop_, handle.get());
    handle->data = this;
    uv_signal_start(
        handle.get(),
        [](uv_signal_t* h, int signum) {
          if (auto* self = static_cast<Master*>(h->data)) self->onSignal(signum);
        },
        signal);
    signals_.push_back(std::move(handle));
    sigaddset(&handled, signal);
  }
  // A binary upgrade execs with these blocked, so none can kill the master before its handlers
  // exist; what arrived meanwhile is delivered now.
  sigprocmask(SIG_UNBLOCK, &handled, nullptr);
  rememberBinary();
}

Master::~Master() {
  api_.close();
  generations_.clear();
  checker_.reset();
  tlsZones_.reset();
  signals_.clear();
  reaper_.close();
  reloadTimer_.close();
  uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks free the handles
  uv_loop_close(&loop_);
}

int Master::run() {
  signal(SIGPIPE, SIG_IGN);
  if (restoreFromInventory()) {
    upgraded_ = true;
    startReload("binary upgrade");
  } else {
    adoptActivatedSockets();
    notifier_.status("starting");
    if (!startGeneration("start")) return 1;
  }
  updateTitle();
  uv_run(&loop_, UV_RUN_DEFAULT);
  return exitStatus_;
}

Generation* Master::current() const {
  for (auto it = generations_.rbegin(); it != generations_.rend(); ++it)
    if ((*it)->phase() == GenerationPhase::Serving) return it->get();
  return nullptr;
}

void Master::onHealthChange(const HealthEvent& event) {
  // Draining generations get nothing: their workers hold no check state. Published before it is
  // logged, so that the log line says what workers already act on.
  for (auto& g : generations_)
    if (g->phase() == GenerationPhase::Serving || g->phase() == GenerationPhase::Starting)
      g->setHealth(event.target.backend, event.target.server, event.up);
  common::log::warn("backend {} server {} is {} ({}, check took {} ms)", event.target.backend,
                    event.target.server, event.up ? "UP" : "DOWN", event.reason, event.checkMs);
}

Generation* Master::newest() const {
  return generations_.empty() ? nullptr : generations_.back().get();
}

bool Master::startGeneration(const char* why) {
  LoadedConfig loaded;
  try {
    // The first generation of a fresh start also reads the journal global.state_file kept.
    loaded = loadConfig(options_.configPath, journal_, generations_.empty() && !upgraded_);
  } catch (const common::ConfigErrors& e) {
    common::log::error("{}: {} has {} error(s); nothing changed:\n{}", why, options_.configPath,
                       e.errors().size(), e.what());
    recordFailure(e.what());
    return false;
  }
  Journal replayed = loaded.journal;
  std::vector<JournalConflict> conflicts = std::move(loaded.conflicts);
  auto generation = std::make_unique<Generation>(nextGenerationId_, std::move(loaded));
  std::vector<std::string> errors;
  if (std::string error = tlsZones_->apply(generation->config()); !error.empty())
    errors.push_back(error);
  generation->setZones(tlsZones_->sessionCache(), tlsZones_->ticketKeys());
  std::string stateError;
  auto isUp = [this](const std::string& b, const std::string& s) { return checker_->isUp(b, s); };
  if (errors.empty() && !generation->buildServerState(isUp, stateError))
    errors.push_back("server state zone: " + stateError);
  if (errors.empty()) generation->acquireListeners(listeners_, errors);
  if (!errors.empty()) {
    std::string text;
    for (const auto& e : errors) text += options_.configPath + ": " + e + "\n";
    common::log::error("{}: generation {} not started; nothing changed:\n{}", why,
                       nextGenerationId_, text);
    recordFailure(text);
    generation.reset();
    listeners_.prune();
    return false;
  }
  ++nextGenerationId_;
  // Changes that no longer apply to the file are dropped from the journal and reported once.
  journal_ = std::move(replayed);
  stateFile_ = generation->config().global.stateFile;
  journalConflicts_.clear();
  for (const auto& c : conflicts) {
    common::log::error("{}", c.str());
    journalConflicts_.push_back(c.str());
  }
  if (!conflicts.empty()) {
    lastErrors_ = journalConflicts_;
    saveJournal();
  }
  for (const auto& l : generation->listeners())
    common::log::info("generation {}: frontend {} listening on {}", generation->id(), l.frontend,
                      l.listener->bound.text());
  unsigned workers = generation->config().global.workers;
  generation->slots().resize(workers);
  Generation& ref = *generation;
  generations_.push_back(std::move(generation));
  for (unsigned slot = 0; slot < workers; ++slot) spawnSlot(ref, slot);
  return true;
}

WorkerProcess::Handlers Master::handlersFor(Generation& generation) {
  return {
      [this, &generation](WorkerProcess& w, common::ControlMessage&& m) {
        onWorkerMessage(generation, w, std::move(m));
      },
      [this, &generation](WorkerProcess& w, int status) { onWorkerExit(generation, w, status); }};
}

// The identity global.user / global.group name (resolved now: the child may not call getpwnam
// between fork and exec). The master itself stays as it is, so a reload can still bind a
// privileged port.
static WorkerProcess::Credentials credentialsOf(const common::GlobalConfig& global) {
  WorkerProcess::Credentials c;
  if (global.user.empty() && global.group.empty()) return c;
  c.drop = true;
  c.uid = geteuid();
  c.gid = getegid();
  if (!global.user.empty())
    if (passwd* pw = getpwnam(global.user.c_str())) {
      c.uid = pw->pw_uid;
      c.gid = pw->pw_gid;
    }
  if (!global.group.empty())
    if (group* gr = getgrnam(global.group.c_str())) c.gid = gr->gr_gid;
  return c;
}

void Master::spawnSlot(Generation& generation, unsigned slot) {
  auto& s = generation.slots()[slot];
  if (!s.process) s.process = std::make_unique<WorkerProcess>(slot, handlersFor(generation));
  auto credentials = credentialsOf(generation.config().global);
  if (!zygote_.running()) zygote_.start(options_.workerExe);
  if (int rc = s.process->spawn(&loop_, options_.workerExe, credentials, &zygote_); rc < 0) {
    common::log::error("spawn worker gen {} slot {}: {}", generation.id(), slot,
                       std::strerror(-rc));
    return scheduleRespawn(generation, slot);
  }
  common::log::info("generation {}: worker slot {} started, pid {}", generation.id(), slot,
                    s.process->pid());
  generation.sendHandover(*s.process);
}

void Master::onWorkerMessage(Generation& generation, WorkerProcess& worker,
                             common::ControlMessage&& message) {
  std::string type = message.type();
  if (type == "ready") return onWorkerReady(generation, worker);
  if (type == "changed") return onWorkerChanged(worker, message);
  if (type == "stats") {
    worker.setConnections(message.body.value("connections", 0u));
    return;
  }
  common::log::warn("worker pid {}: ignoring control message '{}'", worker.pid(), type);
}

void Master::onWorkerReady(Generation& generation, WorkerProcess& worker) {
  if (worker.phase() != WorkerPhase::Spawned) return;
  worker.setPhase(WorkerPhase::Ready);
  if (generation.phase() == GenerationPhase::Draining) {
    // Respawned into a generation that started draining meanwhile.
    worker.setPhase(WorkerPhase::Draining);
    worker.send({{"type", "drain"}});
    return;
  }
  if (generation.phase() == GenerationPhase::Starting && generation.allReady()) promote(generation);
}

void Master::promote(Generation& generation) {
  generation.setPhase(GenerationPhase::Serving);
  common::log::info("generation {} serving with {} workers", generation.id(),
                    generation.slots().size());
  bool first = phase_ == MasterPhase::Starting;
  phase_ = MasterPhase::Running;
  // Only now is it safe to retire older generations: the new one accepts on every listener.
  for (auto& other : generations_)
    if (other.get() != &generation && other->phase() != GenerationPhase::Draining &&
        other->phase() != GenerationPhase::Gone)
      drainGeneration(*other, "replaced");
  enforceMaxOldGenerations();
  listeners_.prune();
  checker_->setTargets(HealthChecker::targetsOf(generation.config()));
  updateTitle();
  setupApi(generation.config());
  if (first) {
    notifier_.ready(summary());
    if (reloadPending_) {
      reloadPending_ = false;
      reloadWaiters_ = std::move(pendingReloadWaiters_);
      pendingReloadWaiters_.clear();
      startReload("queued reload");
    }
  } else if (reloading_ == &generation) {
    finishReload(true, summary());
  }
}

void Master::drainGeneration(Generation& generation, const char* why) {
  Generation* latest = current() ? current() : &generation;
  generation.drain(&loop_, latest->config().global.hardStopAfter);
  common::log::info(
      "generation {} draining ({}): {} workers, {} connections left, hard stop in {} s",
      generation.id(), why, generation.liveWorkers(), generation.connections(),
      latest->config().global.hardStopAfter.count() / 1000);
  malloc_trim(0);  // the generation's parsed config and tables were just freed
  if (generation.phase() == GenerationPhase::Gone) reapGenerations();
}

void Master::enforceMaxOldGenerations() {
  Generation* latest = current();
  if (!latest) return;
  unsigned limit = latest->config().global.maxOldGenerations;
  std::vector<Generation*> draining;
  for (auto& g : generations_)
    if (g->phase() == GenerationPhase::Draining && !g->terminating() && g->liveWorkers() > 0)
      draining.push_back(g.get());
  // Oldest first: generations_ is in creation order.
  for (size_t i = 0; draining.size() - i > limit; ++i)
    draining[i]->terminate(&loop_,
                           "more than max_old_generations=" + std::to_string(limit) + " draining");
}

void Master::onWorkerExit(Generation& generation, WorkerProcess& worker, int status) {
  bool stopping = phase_ == MasterPhase::Stopping || phase_ == MasterPhase::Exiting;
  if (stopping || generation.phase() == GenerationPhase::Draining) {
    common::log::info("generation {}: worker slot {} pid {} exited ({}), {} workers left",
                      generation.id(), worker.slot(), worker.pid(), describeWaitStatus(status),
                      generation.liveWorkers());
    if (generation.liveWorkers() == 0) {
      generation.setPhase(GenerationPhase::Gone);
      // Destroyed from the check phase: this call comes from inside the worker's own callback.
      uv_check_start(reaper_.get(), [](uv_check_t* h) {
        if (auto* self = static_cast<Master*>(h->data)) self->reapGenerations();
      });
    }
    updateTitle();
    return;
  }
  common::log::warn("generation {}: worker slot {} pid {} died unexpectedly ({})", generation.id(),
                    worker.slot(), worker.pid(), describeWaitStatus(status));
  scheduleRespawn(generation, worker.slot());
}

void Master::scheduleRespawn(Generation& generation, unsigned slot) {
  auto& s = generation.slots()[slot];
  bool quick = !s.process || monotonicMs() - s.process->startedMs() < kQuickExitMs;
  s.quickExits = quick ? s.quickExits + 1 : 0;
  uint64_t delay =
      s.quickExits <= 1
          ? 0
          : std::min<uint64_t>(kMaxBackoffMs, 100ull << std::min(s.quickExits - 2, 10u));
  common::log::info("generation {}: respawning slot {} in {} ms", generation.id(), slot, delay);
  s.respawnTimer = common::UvHandle<uv_timer_t>();
  uv_timer_init(&loop_, s.respawnTimer.get());
  s.respawnTarget = {this, &generation, slot};
  s.respawnTimer->data = &s.respawnTarget;
  uv_timer_start(
      s.respawnTimer.get(),
      [](uv_timer_t* h) {
        auto* target = static_cast<Generation::Slot::RespawnTarget*>(h->data);
        if (target) target->master->spawnSlot(*target->generation, target->slot);
      },
      delay, 0);
}

void Master::reapGenerations() {
  uv_check_stop(reaper_.get());
  for (auto& g : generations_)
    if (g->phase() == GenerationPhase::Gone && g.get() != reloading_)
      common::log::info("generation {} gone", g->id());
  generations_.erase(std::remove_if(generations_.begin(), generations_.end(),
                                    [this](const auto& g) {
                                      return g->phase() == GenerationPhase::Gone &&
                                             g.get() != reloading_;
                                    }),
                     generations_.end());
  listeners_.prune();
  updateTitle();
  exitIfDone();
}

void Master::onSignal(int signal) {
  switch (signal) {
    case SIGHUP:
      return requestReload("SIGHUP");
    case SIGUSR2:
      return requestReload("SIGUSR2");
    case SIGTERM:
      return beginStop(true, "SIGTERM");
    case SIGQUIT:
      return beginStop(true, "SIGQUIT");
    case SIGINT:
      return beginStop(false, "SIGINT");
  }
}

void Master::beginStop(bool graceful, const char* why) {
  if (phase_ == MasterPhase::Exiting) return;
  if (phase_ == MasterPhase::Stopping && graceful) return;
  phase_ = graceful ? MasterPhase::Stopping : MasterPhase::Exiting;
  reloadTimer_.close();
  reloading_ = nullptr;
  reloadPending_ = false;
  answerReloadWaiters({{"ok", false}, {"error", std::string(why) + ": molt is stopping"}});
  for (auto& waiter : pendingReloadWaiters_) waiter({{"ok", false}, {"error", "molt is stopping"}});
  pendingReloadWaiters_.clear();
  common::log::info("{}: {} stop of {} generations", why, graceful ? "graceful" : "fast",
                    generations_.size());
  checker_->setTargets({});  // a stopping instance checks nothing
  notifier_.stopping(std::string(why) + ": stopping");
  for (auto& g : generations_) {
    if (graceful) {
      if (g->phase() != GenerationPhase::Draining) drainGeneration(*g, why);
    } else {
      g->terminate(&loop_, why);
    }
  }
  updateTitle();
  exitIfDone();
}

void Master::exitIfDone() {
  if (phase_ != MasterPhase::Stopping && phase_ != MasterPhase::Exiting) return;
  for (auto& g : generations_)
    if (g->liveWorkers() > 0) return;
  common::log::info("all workers gone; master exiting");
  api_.close();
  checker_->setTargets({});
  phase_ = MasterPhase::Exiting;
  generations_.clear();
  uv_stop(&loop_);
}

std::string Master::summary() const {
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
  return text;
}

void Master::updateTitle() {
  Generation* serving = current();
  size_t draining = 0;
  for (auto& g : generations_)
    if (g->phase() == GenerationPhase::Draining) ++draining;
  std::string title = "master";
  if (serving) title += " gen " + std::to_string(serving->id());
  if (draining) title += " (" + std::to_string(draining) + " draining)";
  if (phase_ == MasterPhase::Stopping) title += " stopping";
  common::setProcessTitle(title);
}

}  // namespace molt::master
