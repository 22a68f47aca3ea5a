#include "master/master.hpp"

#include <signal.h>

#include "common/log.hpp"

namespace molt::master {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR2};

}  // namespace

Master::Master(MasterOptions options)
    : options_(std::move(options)),
      tlsZones_(&loop_.loop),
      checker_(&loop_.loop,
               [this](const HealthEvent& e) {
                 // Published before it is logged: the log says what workers already act on.
                 supervisor_.publishHealth(e.target.backend, e.target.server, e.up);
                 common::log::warn("backend {} server {} is {} ({}, check took {} ms)",
                                   e.target.backend, e.target.server, e.up ? "UP" : "DOWN",
                                   e.reason, e.checkMs);
               }),
      supervisor_(
          &loop_.loop, options_.workerExe, listeners_,
          {[this](Generation& g) { onServing(g); },
           [this](WorkerProcess& w, const control::Changed& c) { changes_.onChanged(w, c); },
           [this] { exitIfDone(); },
           [this](const std::string& summary) { notifier_.status(summary); }}),
      builder_(options_.configPath, listeners_, tlsZones_, checker_),
      reloader_(&loop_.loop,
                {[this] { return upgrader_.binaryChanged(); },
                 [this](std::function<void(const std::string&)> done) {
                   upgrader_.check(std::move(done));
                 },
                 [this] { upgrader_.cancelCheck(); },
                 [this](const char* why, const std::vector<ApiReply>& waiters) {
                   return upgrader_.upgrade(why, waiters);
                 },
                 [this](const char* why, bool reload) { return build(why, reload); },
                 [this] { return builder_.nextId(); },
                 [this] {
                   Generation* serving = supervisor_.current();
                   return serving ? serving->id() : 0u;
                 },
                 [this](unsigned id, const std::string& why) { supervisor_.abandon(id, why); },
                 [this] { return supervisor_.summary(); },
                 [this](const std::string& status) { notifier_.reloading(status); },
                 [this](const std::string& status) { notifier_.ready(status); },
                 [this] { changes_.applyQueued(); },
                 [this](bool ok, double seconds) { metrics_.reloadEnded(ok, seconds); }}),
      changes_(&loop_.loop, supervisor_, checker_,
               [this] { return reloader_.phase() != ReloadPhase::Idle; }),
      metrics_(&loop_.loop, supervisor_, reloader_, tlsZones_, checker_),
      commands_(supervisor_, reloader_, changes_, tlsZones_, metrics_),
      api_(&loop_.loop, [this](const nlohmann::json& r, const ApiPeer& peer,
                               ApiReply reply) { commands_.handle(r, peer, std::move(reply)); }),
      upgrader_(options_.binaryPath, options_.argv,
                {&loop_.loop, supervisor_, listeners_, tlsZones_, api_, changes_, reloader_,
                 builder_, checker_, notifier_, metrics_}) {
  checker_.onFailure([this](const CheckTarget& t) { metrics_.checkFailed(t.backend, t.server); });
  sigset_t handled;
  sigemptyset(&handled);
  for (int signal : kSignals) {
    common::UvHandle<uv_signal_t> handle;
    uv_signal_init(&loop_.loop, handle.get());
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
}

Master::~Master() {
  api_.close();
  metrics_.close();
  supervisor_.clear();
}

int Master::run() {
  signal(SIGPIPE, SIG_IGN);
  if (upgrader_.restore()) {
    if (!upgrader_.failure().empty()) reloader_.failWith(upgrader_.failure());
    reloader_.request("binary upgrade", upgrader_.takeHandedWaiters(), UpgradeMode::Never);
  } else {
    listeners_.adoptActivated();
    notifier_.status("starting");
    if (!reloader_.start()) return 1;
  }
  uv_run(&loop_.loop, UV_RUN_DEFAULT);
  return 0;
}

// The Reloader's build step: the file's generation, its journal adopted, its workers started.
BuildOutcome Master::build(const char* why, bool reload) {
  const std::string& path = builder_.configPath();
  unsigned id = builder_.nextId();
  if (reload) common::log::info("{}: reloading {} as generation {}", why, path, id);
  // A fresh start also reads the journal global.state_file kept.
  BuiltGeneration built = builder_.build(changes_.journal(), !reload);
  if (!built.generation) {
    std::string text;
    for (const auto& e : built.errors) text += e + "\n";
    common::log::error("{}: generation {} not started, {} has {} error(s); nothing changed:\n{}",
                       why, id, path, built.errors.size(), text);
    return {std::nullopt, std::move(built.errors), {}};
  }
  std::string stateFile = built.generation->config().global.stateFile;
  auto readyTimeout =
      static_cast<uint64_t>(built.generation->config().global.reloadTimeout.count());
  auto warnings = changes_.adopt(std::move(built.journal), built.conflicts, stateFile);
  for (const auto& l : built.generation->listeners())
    common::log::info("generation {}: frontend {} listening on {}", id, l.frontend,
                      l.listener->bound.text());
  supervisor_.launch(std::move(built.generation));
  return {id, {}, std::move(warnings), readyTimeout};
}

void Master::onServing(Generation& generation) {
  tlsZones_.commit(generation.config(), generation.sessionCache(), generation.ticketKeys());
  checker_.setTargets(HealthChecker::targetsOf(generation.config()));
  configureApiSocket(api_, generation.config());
  metrics_.configure(generation.config());
  reloader_.generationServing(generation.id());
}

void Master::onSignal(int signal) {
  switch (signal) {
    case SIGHUP:
      return reloader_.request("SIGHUP");
    case SIGUSR2:
      return reloader_.request("SIGUSR2");
    case SIGTERM:
      return beginStop(true, "SIGTERM");
    case SIGQUIT:
      return beginStop(true, "SIGQUIT");
    case SIGINT:
      return beginStop(false, "SIGINT");
  }
}

void Master::beginStop(bool graceful, const char* why) {
  SupervisorPhase phase = supervisor_.phase();
  if (phase == SupervisorPhase::Exiting) return;
  if (phase == SupervisorPhase::Stopping && graceful) return;
  reloader_.stop(why);
  common::log::info("{}: {} stop of {} generations", why, graceful ? "graceful" : "fast",
                    supervisor_.generations().size());
  checker_.setTargets({});  // a stopping instance checks nothing
  notifier_.stopping(std::string(why) + ": stopping");
  supervisor_.stop(graceful, why);
  exitIfDone();
}

void Master::exitIfDone() {
  if (supervisor_.phase() == SupervisorPhase::Supervising || supervisor_.liveWorkers() > 0) return;
  common::log::info("all workers gone; master exiting");
  api_.close();
  metrics_.close();
  checker_.setTargets({});
  supervisor_.clear();
  uv_stop(&loop_.loop);
}

}  // namespace molt::master
