// The generation table and the worker lifecycle: spawn, respawn with backoff, promote, drain,
// reap.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/control_messages.hpp"
#include "common/uv_handle.hpp"
#include "master/counters.hpp"
#include "master/generation.hpp"
#include "master/listener.hpp"
#include "master/migrator.hpp"
#include "master/worker_process.hpp"
#include "master/zygote.hpp"

namespace molt::master {

// Lifecycle of the supervisor, and so of the master's workers as a whole.
enum class SupervisorPhase {
  Supervising,  // workers that die are respawned; generations come and go with reloads
  Stopping,     // graceful stop: every generation drains, nothing is respawned
  Exiting       // fast stop (every worker stopped now), or nothing left to wait for
};

// Owns every generation (oldest first) and their workers. A generation it launches gets its
// workers spawned (through the zygote when it runs); once they are all ready the generation
// serves and every older one drains. Workers' control messages are decoded here; what concerns
// others goes out through Events. Master process, master loop.
class Supervisor {
 public:
  struct Events {
    std::function<void(Generation&)> serving;  // a generation's workers are all ready
    // A worker confirmed (or refused) a runtime change.
    std::function<void(WorkerProcess&, const control::Changed&)> changed;
    std::function<void()> reaped;  // generations went away: maybe nothing is left
    // A worker slot keeps failing to start: the summary that says so, for sd_notify STATUS.
    std::function<void(const std::string& summary)> trouble;
  };

  Supervisor(uv_loop_t* loop, std::string workerExe, ListenerSet& listeners, Events events);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Takes a freshly built generation and spawns its workers.
  Generation& launch(std::unique_ptr<Generation> generation);
  // Binary upgrade: takes a generation the previous image ran (restored with handlersFor()),
  // and respawns the slots of serving generations whose worker had exited.
  void adopt(std::unique_ptr<Generation> generation);
  void respawnMissing();
  // What a generation's workers report to; for Generation::restore.
  WorkerProcess::Handlers handlersFor(Generation& generation);
  // Stops a generation a reload gave up on.
  void abandon(unsigned id, const std::string& why);
  // Graceful: every generation drains; fast: every worker is stopped now.
  void stop(bool graceful, const char* why);

  SupervisorPhase phase() const { return phase_; }
  Generation* current() const;  // the newest serving generation
  Generation* newest() const;
  const std::vector<std::unique_ptr<Generation>>& generations() const { return generations_; }
  size_t liveWorkers() const;
  bool workerAlive(pid_t pid) const;
  // Publishes a health change to the generations whose workers read it.
  void publishHealth(const std::string& backend, const std::string& server, bool up);
  // "generation 3 serving, 2 workers; 1 draining with 4 connections"
  std::string summary() const;
  const Zygote& zygote() const { return zygote_; }
  const Migrator& migrator() const { return migrator_; }
  Migrator& migrator() { return migrator_; }
  // Stops the zygote (a binary upgrade: it runs the old binary).
  void stopZygote() { zygote_.stop(); }
  // Everything gone: the master is exiting.
  void clear();
  // Every worker's counters, those that exited included: folded now (master/counters.hpp).
  CounterTotals counterTotals() const;
  // What exited workers counted, for the binary upgrade's inventory and back.
  const CounterTotals& retiredCounters() const { return retired_; }
  void setRetiredCounters(CounterTotals totals) { retired_ = std::move(totals); }

 private:
  void spawnSlot(Generation& generation, unsigned slot);
  std::unique_ptr<WorkerCounters> countersFor(const Generation& generation) const;
  void retireCounters(WorkerProcess& worker);
  void onWorkerMessage(Generation& generation, WorkerProcess& worker,
                       common::ControlMessage&& message);
  void onWorkerReady(Generation& generation, WorkerProcess& worker);
  void onWorkerExit(Generation& generation, WorkerProcess& worker, int status);
  void reject(Generation& generation, WorkerProcess& worker, const std::string& what);
  void failedStart(Generation& generation, unsigned slot, const std::string& why);
  void scheduleRespawn(Generation& generation, unsigned slot);
  void promote(Generation& generation);
  void drainGeneration(Generation& generation, const char* why);
  // True when draining workers offer their connections to the newest serving generation.
  bool migrating() const;
  void enforceMaxOldGenerations();
  void reapSoon();
  void reap();
  void updateTitle() const;

  uv_loop_t* loop_;
  std::string workerExe_;
  ListenerSet& listeners_;
  Events events_;
  SupervisorPhase phase_ = SupervisorPhase::Supervising;
  std::vector<std::unique_ptr<Generation>> generations_;  // oldest first
  common::UvHandle<uv_check_t> reaper_;
  Zygote zygote_;  // forks workers (started on first need, restarted when it fails)
  Migrator migrator_;
  static constexpr std::uint32_t kSpareBackendRows = 256;
  CounterTotals retired_;  // the last counts of workers that exited
  // With migration, max_old_generations is enforced once the drained generation's connections
  // had their chance to move.
  common::UvHandle<uv_timer_t> enforceTimer_;
};

}  // namespace molt::master
