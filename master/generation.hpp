// A generation: everything built from one reading of the config file.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/config.hpp"
#include "common/control_messages.hpp"
#include "common/unique_fd.hpp"
#include "common/uv_handle.hpp"
#include "master/journal.hpp"
#include "master/listener.hpp"
#include "master/worker_process.hpp"
#include "shm/server_state.hpp"
#include "shm/session_cache.hpp"
#include "shm/ticket_keys.hpp"

namespace molt::master {

class Supervisor;

// Lifecycle of a generation. Transitions are the Generation's own (markServing, drain,
// abandon, workerExited); nothing else sets the phase.
enum class GenerationPhase {
  Starting,  // workers spawned, not all ready yet
  Serving,   // every worker reported ready; this generation takes new connections
  Draining,  // a newer generation serves (or molt is stopping); workers finish their connections
  Gone       // every worker exited; the generation is about to be destroyed
};

const char* phaseName(GenerationPhase phase);

// The validated config of a generation, with the bytes its workers will parse again.
struct LoadedConfig {
  std::unique_ptr<common::Config> config;
  common::UniqueFd bundle;  // sealed memfd (common/bundle.hpp)
  // The runtime changes replayed onto `config` (also in the bundle, for the workers), and those
  // that no longer applied and were dropped.
  Journal journal;
  std::vector<JournalConflict> conflicts;
};

// A listener as one generation uses it: which frontend bind it serves.
struct GenerationListener {
  std::string frontend;
  unsigned bind = 0;
  std::shared_ptr<Listener> listener;
};

// Everything built from one config: listeners (shared with other generations by address),
// worker slots, the handover bundle, the server-state zone. Owned by the Supervisor; master loop
// only.
class Generation {
 public:
  struct Slot {
    // What the respawn timer's callback needs; lives in the slot so the timer never outlives it.
    struct RespawnTarget {
      Supervisor* supervisor = nullptr;
      Generation* generation = nullptr;
      unsigned slot = 0;
    };
    std::unique_ptr<WorkerProcess> process;
    RespawnTarget respawnTarget;
    common::UvHandle<uv_timer_t> respawnTimer;
    // Consecutive failed starts (spawn refused or failed, or an exit soon after the start): drive
    // the respawn backoff and are reported from the third on.
    unsigned failures = 0;
    std::string lastFailure;
  };

  Generation(unsigned id, LoadedConfig loaded) : id_(id), loaded_(std::move(loaded)) {}

  // ---- built by GenerationBuilder (master/generation_builder.hpp) ----
  // Takes the listeners of every frontend bind from `listeners` (reusing sockets by address).
  // Returns false with one "frontends[i].bind[j]: reason" line per failure in `errors`.
  bool acquireListeners(ListenerSet& listeners, std::vector<std::string>& errors);
  // The TLS zones its workers use (either may be null); held for as long as the generation.
  void setZones(std::shared_ptr<shm::SessionCache> cache, std::shared_ptr<shm::TicketKeys> keys) {
    sessionCache_ = std::move(cache);
    ticketKeys_ = std::move(keys);
  }
  // Builds the generation's server-state zone. `isUp` gives the health known so far by
  // backend/server name (checks run in the master, state carried across reloads by name).
  bool buildServerState(const std::function<bool(const std::string&, const std::string&)>& isUp,
                        std::string& error);
  void resizeSlots(unsigned workers) { slots_.resize(workers); }

  // ---- lifecycle ----
  GenerationPhase phase() const { return phase_; }
  // Starting -> Serving: every worker reported ready.
  void markServing();
  // Starting/Serving -> Draining: every live worker gets the drain order (with the time left
  // before the hard stop, for its process title) and the hard stop is armed for `hardStopAfter`.
  // What only a serving generation needs is freed (releaseServingState). Straight to Gone when
  // no worker lives.
  // With `migrate`, the workers first offer their connections to the newest generation.
  void drain(uv_loop_t* loop, common::Millis hardStopAfter, bool migrate = false);
  // Draining: a newer generation serves; the workers offer again what did not move yet.
  void offerAgain();
  // Starting -> Draining, its workers stopped now: a reload gave up on it.
  void abandon(uv_loop_t* loop, const std::string& why);
  // After one of its workers exited: a draining or stopped generation without live workers
  // becomes Gone. Returns true when it did.
  bool workerExited();
  // Stops every live worker now: SIGTERM, then SIGKILL after a short grace. Idempotent.
  void terminate(uv_loop_t* loop, const std::string& why);
  bool terminating() const { return stopStage_ != StopStage::None; }

  // ---- workers ----
  // Sends a freshly spawned worker its handover: hello + bundle, zones, each listener, start,
  // then the runtime changes made since the generation was built.
  void sendHandover(WorkerProcess& worker) const;
  // Sends a runtime change to every live worker (those still starting get it after their
  // handover) and keeps it for workers spawned later. Returns the pids it went to.
  std::vector<pid_t> broadcast(control::Change change);
  std::vector<Slot>& slots() { return slots_; }
  const std::vector<Slot>& slots() const { return slots_; }
  bool allReady() const;
  size_t liveWorkers() const;    // not yet exited
  unsigned connections() const;  // as last reported by the workers

  // ---- state ----
  unsigned id() const { return id_; }
  const common::Config& config() const { return *loaded_.config; }
  // The runtime API changes the serving generation's config in place (master/changes.cpp).
  common::Config& mutableConfig() { return *loaded_.config; }
  const std::vector<GenerationListener>& listeners() const { return listeners_; }
  const std::shared_ptr<shm::SessionCache>& sessionCache() const { return sessionCache_; }
  const std::shared_ptr<shm::TicketKeys>& ticketKeys() const { return ticketKeys_; }
  shm::ServerState* serverState() const { return serverState_.get(); }
  // Publishes a health change to this generation's workers. False when the server is unknown.
  bool setHealth(const std::string& backend, const std::string& server, bool up);
  // Keeps the checked-server index in step with a server the runtime API added or changed.
  void trackCheck(const std::string& backend, const common::ServerConfig& server);
  void untrackCheck(const std::string& backend, const std::string& server) {
    checked_.erase(backend + "/" + server);
  }
  uint64_t drainStartedMs() const { return drainStartedMs_; }
  // CLOCK_MONOTONIC milliseconds at which the hard stop fires (0: none armed).
  uint64_t hardStopAtMs() const { return hardStopAtMs_; }

  // ---- binary upgrade (master/generation_inventory.cpp) ----
  // The generation as the next image needs it: a JSON entry, with every descriptor it names
  // appended to `fds` (close-on-exec cleared by the caller).
  nlohmann::json inventory(std::vector<int>& fds) const;
  // What restore() needs from the rest of the master.
  struct RestoreContext {
    uv_loop_t* loop;
    std::function<WorkerProcess::Handlers(Generation&)> handlers;
    std::function<std::shared_ptr<Listener>(const std::string& key)> listener;
    std::function<std::shared_ptr<shm::SessionCache>(int fd)> cacheByFd;
    std::shared_ptr<shm::TicketKeys> ticketKeys;
  };
  // A generation as the previous image described it in inventory(), its workers adopted.
  static std::unique_ptr<Generation> restore(const nlohmann::json& entry,
                                             const RestoreContext& context);

 private:
  void adoptServerState(std::unique_ptr<shm::ServerState> state);
  void releaseServingState();
  void armHardStop(uv_loop_t* loop, uint64_t delayMs);
  void armStopTimer(uv_loop_t* loop, uint64_t delayMs, void (*fire)(uv_timer_t*));
  void escalate(uv_loop_t* loop);

  unsigned id_;
  LoadedConfig loaded_;
  GenerationPhase phase_ = GenerationPhase::Starting;
  std::vector<GenerationListener> listeners_;
  std::vector<Slot> slots_;
  std::shared_ptr<shm::SessionCache> sessionCache_;
  std::shared_ptr<shm::TicketKeys> ticketKeys_;
  std::unique_ptr<shm::ServerState> serverState_;
  std::unordered_map<std::string, std::uint64_t> checked_;  // "backend/server" -> zone index
  std::vector<control::Change> changes_;                    // sent since the generation was built
  uint64_t drainStartedMs_ = 0;
  uint64_t hardStopAtMs_ = 0;
  enum class StopStage { None, TermSent, KillSent };
  StopStage stopStage_ = StopStage::None;
  common::UvHandle<uv_timer_t> stopTimer_;
};

// Milliseconds on CLOCK_MONOTONIC: comparable across a binary upgrade (same boot, same clock),
// unlike uv_now(), whose origin is the loop's start.
uint64_t monotonicMs();

}  // namespace molt::master
