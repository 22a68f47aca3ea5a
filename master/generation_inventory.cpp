// Generation: its entry in the binary-upgrade inventory (master/upgrade.hpp describes the
// document), and its restoration by the next image.
#include <fcntl.h>

#include "common/bundle.hpp"
#include "common/journal_text.hpp"
#include "common/log.hpp"
#include "master/generation.hpp"

namespace molt::master {
namespace {

WorkerPhase workerPhaseFrom(const std::string& name) {
  if (name == "ready") return WorkerPhase::Ready;
  if (name == "draining") return WorkerPhase::Draining;
  return WorkerPhase::Spawned;
}

int adoptFd(int fd) {
  if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

// A serving generation's config, parsed again from its bundle by this image; an empty config
// when it cannot be (its workers keep running; this image just cannot respawn them).
LoadedConfig configFromBundle(int fd) {
  LoadedConfig loaded;
  loaded.config = std::make_unique<common::Config>();
  if (fd < 0) return loaded;  // a draining generation is handed over without its bundle
  loaded.bundle.reset(adoptFd(fd));
  std::string error;
  auto bundle = common::readBundle(fd, error);
  if (!bundle) {
    common::log::error("upgrade: generation bundle unreadable: {}", error);
    return loaded;
  }
  try {
    *loaded.config =
        common::parseConfig(bundle->configText, bundle->configPath, bundle->fileSource());
    if (std::string e =
            common::replayJournalText(*loaded.config, bundle->journal, bundle->fileSource());
        !e.empty())
      common::log::warn("upgrade: an older generation's journal: {}", e);
  } catch (const common::ConfigErrors& e) {
    common::log::warn("upgrade: this binary rejects an older generation's config:\n{}", e.what());
  }
  return loaded;
}

}  // namespace

nlohmann::json Generation::inventory(std::vector<int>& fds) const {
  nlohmann::json listeners = nlohmann::json::array(), slots = nlohmann::json::array();
  for (const auto& l : listeners_)
    listeners.push_back({{"frontend", l.frontend}, {"bind", l.bind}, {"key", l.listener->key}});
  for (const auto& slot : slots_) {
    const WorkerProcess* w = slot.process.get();
    bool live = w && w->phase() != WorkerPhase::Exited && w->pidfd() >= 0 && w->controlFd() >= 0;
    slots.push_back({{"slot", &slot - slots_.data()},
                     {"pid", live ? w->pid() : 0},
                     {"pidfd", live ? w->pidfd() : -1},
                     {"control_fd", live ? w->controlFd() : -1},
                     {"phase", live ? phaseName(w->phase()) : "exited"},
                     {"connections", live ? w->connections() : 0},
                     {"started_ms", live ? w->startedMs() : 0}});
    if (live) {
      fds.push_back(w->pidfd());
      fds.push_back(w->controlFd());
      if (const WorkerCounters* counters = w->counters())
        slots.back()["counters"] = counters->inventory(fds);
    }
  }
  int bundleFd = loaded_.bundle.get();
  if (bundleFd >= 0) fds.push_back(bundleFd);
  int stateFd = serverState_ ? serverState_->zone().fd() : -1;
  int loadFd = serverState_ ? serverState_->loadZone().fd() : -1;
  if (stateFd >= 0) fds.push_back(stateFd);
  if (loadFd >= 0) fds.push_back(loadFd);
  return {{"id", id_},
          {"session_cache_fd", sessionCache_ ? sessionCache_->zone().fd() : -1},
          {"server_state_fd", stateFd},
          {"server_load_fd", loadFd},
          {"phase", phaseName(phase_)},
          {"bundle_fd", bundleFd},
          {"drain_started_ms", drainStartedMs_},
          {"hard_stop_at_ms", hardStopAtMs_},
          {"terminating", terminating()},
          {"listeners", listeners},
          {"slots", slots}};
}

std::unique_ptr<Generation> Generation::restore(const nlohmann::json& g,
                                                const RestoreContext& context) {
  auto generation = std::make_unique<Generation>(g.at("id").get<unsigned>(),
                                                 configFromBundle(g.at("bundle_fd").get<int>()));
  Generation& self = *generation;
  // Generations on an older cache zone lose the master's hold on it, not their workers' maps.
  self.setZones(context.cacheByFd(g.value("session_cache_fd", -1)), context.ticketKeys);
  for (const auto& l : g.at("listeners"))
    self.listeners_.push_back({l.at("frontend").get<std::string>(), l.at("bind").get<unsigned>(),
                               context.listener(l.at("key").get<std::string>())});
  self.slots_.resize(g.at("slots").size());
  for (const auto& s : g.at("slots")) {
    unsigned index = s.at("slot").get<unsigned>();
    auto& slot = self.slots_.at(index);
    slot.process = std::make_unique<WorkerProcess>(index, context.handlers(self));
    if (s.at("pid").get<pid_t>() == 0) {
      // Exited before the exec: a serving generation respawns the slot; a draining one must not
      // wait for it.
      slot.process->setPhase(WorkerPhase::Exited);
      continue;
    }
    common::UniqueFd pidfd(adoptFd(s.at("pidfd").get<int>()));
    common::UniqueFd control(adoptFd(s.at("control_fd").get<int>()));
    slot.process->adopt(context.loop, s.at("pid").get<pid_t>(), std::move(pidfd),
                        std::move(control), workerPhaseFrom(s.at("phase").get<std::string>()),
                        s.at("connections").get<unsigned>(), s.at("started_ms").get<uint64_t>());
    if (auto counters = s.find("counters"); counters != s.end()) {
      std::string error;
      std::unique_ptr<WorkerCounters> restored;
      try {
        restored = WorkerCounters::restore(*counters, error);
      } catch (const std::exception& e) {
        error = e.what();
      }
      if (restored)
        slot.process->setCounters(std::move(restored));
      else
        common::log::error("upgrade: generation {} slot {} counters: {}", self.id_, index, error);
    }
  }
  if (int fd = g.value("server_state_fd", -1); fd >= 0) {
    std::string error;
    common::UniqueFd table(adoptFd(fd)), load(adoptFd(g.value("server_load_fd", -1)));
    if (auto state = shm::ServerState::attach(std::move(table), std::move(load),
                                              shm::Access::ReadWrite, error))
      self.adoptServerState(std::move(state));
    else
      common::log::error("upgrade: generation {} server state: {}", self.id_, error);
  }
  if (g.at("phase").get<std::string>() == "draining") {
    // The drain the previous image began: same start, same hard-stop instant.
    self.phase_ = GenerationPhase::Draining;
    self.drainStartedMs_ = g.at("drain_started_ms").get<uint64_t>();
    self.hardStopAtMs_ = g.at("hard_stop_at_ms").get<uint64_t>();
    uint64_t now = monotonicMs();
    self.armHardStop(context.loop, self.hardStopAtMs_ > now ? self.hardStopAtMs_ - now : 0);
    if (g.at("terminating").get<bool>())
      self.terminate(context.loop, "stopping before the upgrade");
    // Its last workers may have exited while the previous image was exec'ing this one.
    if (self.liveWorkers() == 0) self.phase_ = GenerationPhase::Gone;
  } else {
    self.phase_ = GenerationPhase::Serving;
  }
  return generation;
}

}  // namespace molt::master
