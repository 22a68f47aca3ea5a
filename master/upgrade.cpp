// Master: binary upgrade (re-exec keeping every worker and socket) and systemd socket activation.
//
// Inventory protocol (the only description; version 1). Before exec the master writes one JSON
// document to a memfd named "molt-inventory" and names it in MOLT_INVENTORY_FD. Every descriptor
// the document names has close-on-exec cleared, so the new image owns the same numbers:
//   {"version": 1, "config_path": P, "next_generation": N, "last_errors": [..],
//    "listeners":   [{"key", "fd", "backlog", "bound"}],          every socket the master holds
//    "generations": [{"id", "phase", "bundle_fd", "drain_started_ms", "hard_stop_at_ms",
//                     "terminating", "listeners": [{"frontend", "bind", "key"}],
//                     "slots": [{"slot", "pid", "pidfd", "control_fd", "phase",
//                                "connections", "started_ms"}]}]}
// Times are CLOCK_MONOTONIC milliseconds. A slot with pid 0 had no live process (respawn due).
// The master's pid does not change across exec, so workers remain its children and notice
// nothing; their control sockets and pidfds simply change owners.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "common/bundle.hpp"
#include "common/journal_text.hpp"
#include "common/log.hpp"
#include "master/master.hpp"
#include "master/systemd.hpp"

namespace molt::master {
namespace {

constexpr int kInventoryVersion = 1;
constexpr const char* kInventoryEnv = "MOLT_INVENTORY_FD";

bool sameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

void setCloexec(int fd, bool on) {
  fcntl(fd, F_SETFD, on ? FD_CLOEXEC : 0);
}

WorkerPhase workerPhaseFrom(const std::string& name) {
  if (name == "ready") return WorkerPhase::Ready;
  if (name == "draining") return WorkerPhase::Draining;
  return WorkerPhase::Spawned;
}

LoadedConfig configFromBundle(int fd) {
  LoadedConfig loaded;
  loaded.bundle.reset(fd);
  std::string error;
  auto bundle = common::readBundle(fd, error);
  loaded.config = std::make_unique<common::Config>();
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
    // The old workers keep running; this image just cannot respawn them with that config.
    common::log::warn("upgrade: this binary rejects an older generation's config:\n{}", e.what());
  }
  return loaded;
}

}  // namespace

void Master::rememberBinary() {
  if (options_.binaryPath.empty() || stat(options_.binaryPath.c_str(), &binary_) < 0) binary_ = {};
}

bool Master::binaryChanged() const {
  struct stat now {};
  if (options_.binaryPath.empty() || stat(options_.binaryPath.c_str(), &now) < 0) return false;
  return !sameFile(now, binary_);
}

void Master::requestUpgrade(ApiReply reply) {
  forceUpgrade_ = true;  // `molt ctl upgrade` re-execs even an unchanged binary
  requestReload("api upgrade", std::move(reply));
}

void Master::upgrade(const char* why) {
  common::log::info("{}: {} changed on disk; re-executing the master (binary upgrade)", why,
                    options_.binaryPath);
  notifier_.reloading("binary upgrade");
  std::vector<int> fds;
  std::string text = inventory(fds).dump();
  // Clients waiting on this reload lose their connection with the exec; answer them first.
  answerReloadWaiters({{"ok", true},
                       {"status", "binary upgrade: re-executing " + options_.binaryPath +
                                      "; the new master reloads (see proc)"}});
  common::UniqueFd memfd(memfd_create("molt-inventory", 0));
  if (!memfd || write(memfd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    common::log::error("upgrade: inventory memfd: {}; reloading without upgrade",
                       std::strerror(errno));
    return;
  }
  for (int fd : fds) setCloexec(fd, false);
  setenv(kInventoryEnv, std::to_string(memfd.get()).c_str(), 1);
  // Blocked across exec: the new image unblocks them once its handlers are installed.
  sigset_t block, old;
  sigemptyset(&block);
  for (int s : {SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR2}) sigaddset(&block, s);
  sigprocmask(SIG_BLOCK, &block, &old);
  std::vector<char*> argv;
  for (auto& a : options_.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The zygote runs the old binary: stopped and reaped here (the new image could not reap it),
  // the new image starts its own on its first spawn.
  zygote_.stop();
  std::fflush(nullptr);
  execv(options_.binaryPath.c_str(), argv.data());
  int err = errno;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  unsetenv(kInventoryEnv);
  for (int fd : fds) setCloexec(fd, true);
  common::log::error("upgrade: execv({}): {}; the running binary goes on", options_.binaryPath,
                     std::strerror(err));
  rememberBinary();  // don't retry the same file on every reload
}

nlohmann::json Master::inventory(std::vector<int>& fds) const {
  nlohmann::json doc = {
      {"version", kInventoryVersion},         {"config_path", options_.configPath},
      {"next_generation", nextGenerationId_}, {"last_errors", lastErrors_},
      {"journal", journal_.toText()},         {"state_file", stateFile_}};
  std::map<const Listener*, bool> seen;
  nlohmann::json listeners = nlohmann::json::array();
  auto addListener = [&](const Listener& l) {
    if (seen[&l]) return;
    seen[&l] = true;
    listeners.push_back(
        {{"key", l.key}, {"fd", l.fd.get()}, {"backlog", l.backlog}, {"bound", l.bound.text()}});
    fds.push_back(l.fd.get());
  };
  nlohmann::json generations = nlohmann::json::array();
  for (const auto& g : generations_) {
    if (g->phase() == GenerationPhase::Gone) continue;
    nlohmann::json gl = nlohmann::json::array(), slots = nlohmann::json::array();
    for (const auto& l : g->listeners()) {
      addListener(*l.listener);
      gl.push_back({{"frontend", l.frontend}, {"bind", l.bind}, {"key", l.listener->key}});
    }
    for (const auto& slot : g->slots()) {
      const WorkerProcess* w = slot.process.get();
      bool live = w && w->phase() != WorkerPhase::Exited && w->pidfd() >= 0 && w->controlFd() >= 0;
      slots.push_back({{"slot", &slot - g->slots().data()},
                       {"pid", live ? w->pid() : 0},
                       {"pidfd", live ? w->pidfd() : -1},
                       {"control_fd", live ? w->controlFd() : -1},
                       {"phase", live ? phaseName(w->phase()) : "exited"},
                       {"connections", live ? w->connections() : 0},
                       {"started_ms", live ? w->startedMs() : 0}});
      if (live) {
        fds.push_back(w->pidfd());
        fds.push_back(w->controlFd());
      }
    }
    if (g->bundleFd() >= 0) fds.push_back(g->bundleFd());
    int cacheFd = g->sessionCache() ? g->sessionCache()->zone().fd() : -1;
    int stateFd = g->serverState() ? g->serverState()->zone().fd() : -1;
    if (stateFd >= 0) fds.push_back(stateFd);
    generations.push_back({{"id", g->id()},
                           {"session_cache_fd", cacheFd},
                           {"server_state_fd", stateFd},
                           {"phase", phaseName(g->phase())},
                           {"bundle_fd", g->bundleFd()},
                           {"drain_started_ms", g->drainStartedMs()},
                           {"hard_stop_at_ms", g->hardStopAtMs()},
                           {"terminating", g->terminating()},
                           {"listeners", gl},
                           {"slots", slots}});
  }
  for (const auto& l : listeners_.unclaimed()) addListener(*l);
  doc["listeners"] = listeners;
  doc["tls_zones"] = tlsZones_->inventory(fds);
  if (api_.listening()) {
    doc["api"] = {{"fd", api_.fd()}, {"path", api_.path()}, {"uid", api_.allowedUid()}};
    fds.push_back(api_.fd());
  }
  doc["generations"] = generations;
  return doc;
}

bool Master::restoreFromInventory() {
  const char* env = std::getenv(kInventoryEnv);
  if (!env) return false;
  common::UniqueFd memfd(std::atoi(env));
  unsetenv(kInventoryEnv);
  std::string text;
  char chunk[65536];
  ssize_t n;
  lseek(memfd.get(), 0, SEEK_SET);
  while ((n = read(memfd.get(), chunk, sizeof chunk)) > 0)
    text.append(chunk, static_cast<size_t>(n));
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_object() || doc.value("version", 0) != kInventoryVersion) {
    // A layout this image does not know: loud, immediate failure rather than guessing.
    common::log::error("upgrade: inventory version {} not understood; aborting",
                       doc.is_object() ? doc.value("version", 0) : -1);
    std::abort();
  }
  nextGenerationId_ = doc["next_generation"].get<unsigned>();
  if (auto api = doc.find("api"); api != doc.end()) {
    common::UniqueFd fd(api->at("fd").get<int>());
    setCloexec(fd.get(), true);
    if (std::string error = api_.adopt(std::move(fd), api->at("path").get<std::string>(),
                                       api->at("uid").get<uid_t>());
        !error.empty())
      common::log::error("upgrade: api socket: {}", error);
  }
  lastErrors_ = doc["last_errors"].get<std::vector<std::string>>();
  // The runtime changes, for the reload that follows and every later one.
  stateFile_ = doc.value("state_file", "");
  if (std::string error; !journal_.fromText(doc.value("journal", ""), error))
    common::log::error("upgrade: journal: {}", error);
  if (auto zones = doc.find("tls_zones"); zones != doc.end())
    if (std::string error = tlsZones_->restore(*zones); !error.empty())
      common::log::error("upgrade: {}", error);
  std::map<std::string, std::shared_ptr<Listener>> byKey;
  for (const auto& l : doc["listeners"]) {
    auto listener = std::make_shared<Listener>();
    listener->key = l["key"].get<std::string>();
    listener->backlog = l["backlog"].get<int>();
    listener->fd.reset(l["fd"].get<int>());
    setCloexec(listener->fd.get(), true);
    listener->bound.length = sizeof listener->bound.storage;
    getsockname(listener->fd.get(), reinterpret_cast<sockaddr*>(&listener->bound.storage),
                &listener->bound.length);
    byKey[listener->key] = listener;
    listeners_.restore(listener);
  }
  for (const auto& g : doc["generations"]) {
    // A draining generation was handed over without its bundle (it respawns nothing).
    int bundleFd = g["bundle_fd"].get<int>();
    LoadedConfig loaded;
    if (bundleFd >= 0) {
      setCloexec(bundleFd, true);
      loaded = configFromBundle(bundleFd);
    } else {
      loaded.config = std::make_unique<common::Config>();
    }
    auto generation = std::make_unique<Generation>(g["id"].get<unsigned>(), std::move(loaded));
    // Generations on an older cache zone lose the master's hold on it, not their workers' maps.
    generation->setZones(tlsZones_->cacheByFd(g.value("session_cache_fd", -1)),
                         tlsZones_->ticketKeys());
    for (const auto& l : g["listeners"])
      generation->adoptListener({l["frontend"].get<std::string>(), l["bind"].get<int>(),
                                 byKey[l["key"].get<std::string>()]});
    generation->slots().resize(g["slots"].size());
    for (const auto& s : g["slots"]) {
      unsigned slot = s["slot"].get<unsigned>();
      auto& target = generation->slots()[slot];
      target.process = std::make_unique<WorkerProcess>(slot, handlersFor(*generation));
      if (s["pid"].get<pid_t>() == 0) {
        // Exited before the exec: a serving generation respawns the slot below; a draining
        // one must not wait for it.
        target.process->setPhase(WorkerPhase::Exited);
        continue;
      }
      common::UniqueFd pidfd(s["pidfd"].get<int>()), control(s["control_fd"].get<int>());
      setCloexec(pidfd.get(), true);
      setCloexec(control.get(), true);
      target.process->adopt(&loop_, s["pid"].get<pid_t>(), std::move(pidfd), std::move(control),
                            workerPhaseFrom(s["phase"].get<std::string>()),
                            s["connections"].get<unsigned>(), s["started_ms"].get<uint64_t>());
    }
    if (int fd = g.value("server_state_fd", -1); fd >= 0) {
      setCloexec(fd, true);
      std::string error;
      auto state = shm::ServerState::attach(common::UniqueFd(fd), error);
      if (state)
        generation->adoptServerState(std::move(state));
      else
        common::log::error("upgrade: generation {} server state: {}", generation->id(), error);
    }
    std::string phase = g["phase"].get<std::string>();
    if (phase == "draining") {
      generation->restoreDrain(&loop_, g["drain_started_ms"].get<uint64_t>(),
                               g["hard_stop_at_ms"].get<uint64_t>());
      if (g["terminating"].get<bool>())
        generation->terminate(&loop_, "stopping before the upgrade");
    } else {
      generation->setPhase(GenerationPhase::Serving);
    }
    common::log::info("upgrade: adopted generation {} ({}) with {} workers", generation->id(),
                      phase, generation->liveWorkers());
    if (phase == "draining" && generation->liveWorkers() == 0) {
      // Its last workers exited while the previous image was exec'ing us.
      generation->setPhase(GenerationPhase::Gone);
      uv_check_start(reaper_.get(), [](uv_check_t* h) {
        if (auto* self = static_cast<Master*>(h->data)) self->reapGenerations();
      });
    }
    generations_.push_back(std::move(generation));
  }
  for (auto& g : generations_)
    for (unsigned slot = 0; slot < g->slots().size(); ++slot)
      if (g->phase() == GenerationPhase::Serving && g->slots()[slot].process->pid() <= 0)
        spawnSlot(*g, slot);
  // Health found by the previous image, so the reload that follows keeps down servers down.
  for (auto& g : generations_) {
    if (g->phase() != GenerationPhase::Serving || !g->serverState()) continue;
    checker_->setTargets(HealthChecker::targetsOf(g->config()));
    const shm::ServerState& state = *g->serverState();
    for (std::uint32_t b = 0; b < state.backendCount(); ++b) {
      auto backend = state.backend(b);
      for (std::uint64_t i = backend.first; i < backend.first + backend.count; ++i)
        if (state.live(i).health.load() == static_cast<std::uint8_t>(shm::ServerHealth::Down))
          checker_->assume(std::string(backend.name), std::string(state.serverName(i)), false);
    }
  }
  phase_ = MasterPhase::Running;
  return true;
}

void Master::adoptActivatedSockets() {
  char** names = nullptr;
  int count = systemd::listenFdsWithNames(&names);
  if (count < 0) common::log::warn("socket activation: sd_listen_fds: {}", std::strerror(-count));
  for (int i = 0; i < count; ++i) {
    int fd = 3 + i;  // SD_LISTEN_FDS_START
    std::string name = names && names[i] ? names[i] : "unknown";
    if (systemd::isSocket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
      common::log::warn("socket activation: fd {} ({}) is not a listening stream socket; ignored",
                        fd, name);
      continue;
    }
    auto listener = std::make_shared<Listener>();
    listener->fd.reset(fd);
    setCloexec(fd, true);
    listener->bound.length = sizeof listener->bound.storage;
    getsockname(fd, reinterpret_cast<sockaddr*>(&listener->bound.storage), &listener->bound.length);
    listener->key = listener->bound.text();
    listener->backlog = 1024;
    common::log::info("socket activation: fd {} ({}) listening on {}", fd, name, listener->key);
    listeners_.adopt(std::move(listener));
  }
  if (names) {
    for (int i = 0; i < count; ++i) free(names[i]);
    free(names);
  }
}

}  // namespace molt::master
