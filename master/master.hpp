// The master process: owns generations, listeners and worker supervision; never proxies.
#pragma once

#include <sys/stat.h>
#include <uv.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/uv_handle.hpp"
#include "master/api_server.hpp"
#include "master/generation.hpp"
#include "master/health_check.hpp"
#include "master/journal.hpp"
#include "master/listener.hpp"
#include "master/notify.hpp"
#include "master/tls_zones.hpp"
#include "master/zygote.hpp"

namespace molt::master {

// What the master is doing as a whole.
enum class MasterPhase {
  Starting,  // building the first generation; no generation serves yet
  Running,   // a generation serves; reloads allowed
  Stopping,  // graceful stop: every generation drains, exit when all workers are gone
  Exiting    // fast stop or drained: closing everything
};

struct MasterOptions {
  std::string configPath;
  std::string workerExe = "/proc/self/exe";  // what workers exec: the running image
  std::string binaryPath;                    // the file on disk, re-exec'd by a binary upgrade
  std::vector<std::string> argv;             // the master's own command line, for re-exec
};

class Master {
 public:
  explicit Master(MasterOptions options);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Starts (or, after a binary upgrade, adopts) the generations and runs until stopped.
  // Returns the process exit status: 0 after a stop, 1 when the first generation failed.
  int run();

 private:
  // Lifecycle (master.cpp)
  bool startGeneration(const char* why);
  void spawnSlot(Generation& generation, unsigned slot);
  WorkerProcess::Handlers handlersFor(Generation& generation);
  void onWorkerMessage(Generation& generation, WorkerProcess& worker,
                       common::ControlMessage&& message);
  void onWorkerReady(Generation& generation, WorkerProcess& worker);
  void onWorkerExit(Generation& generation, WorkerProcess& worker, int status);
  void scheduleRespawn(Generation& generation, unsigned slot);
  void promote(Generation& generation);
  void drainGeneration(Generation& generation, const char* why);
  void enforceMaxOldGenerations();
  void onSignal(int signal);
  void beginStop(bool graceful, const char* why);
  void reapGenerations();
  void exitIfDone();
  void updateTitle();
  std::string summary() const;
  Generation* current() const;
  Generation* newest() const;
  void onHealthChange(const HealthEvent& event);

  // Reloads (reload.cpp). `waiter` (the runtime API) is answered when the reload it caused or
  // joined ends.
  void requestReload(const char* why, ApiReply waiter = {});
  void startReload(const char* why);
  void finishReload(bool ok, const std::string& status);
  void answerReloadWaiters(const nlohmann::json& response);
  void onReloadTimeout();
  void recordFailure(const std::string& errors);

  // Runtime API (api.cpp)
  void setupApi(const common::Config& config);
  void handleApi(const nlohmann::json& request, ApiReply reply);
  void dispatchApi(const nlohmann::json& request, ApiReply& reply);
  nlohmann::json procReport() const;
  nlohmann::json cacheReport() const;
  nlohmann::json serversReport(const nlohmann::json& request) const;

  // Runtime changes (changes.cpp)
  void handleChange(const nlohmann::json& request, ApiReply reply);
  void deleteServer(const nlohmann::json& request, ApiReply reply, uint64_t startedMs);
  void applyChange(Generation& serving, const nlohmann::json& request, ApiReply reply);
  void broadcastChange(Generation& serving, std::vector<nlohmann::json> messages, ApiReply reply,
                       std::string description);
  void onWorkerChanged(WorkerProcess& worker, const common::ControlMessage& message);
  void finishChangeIfDone(std::uint64_t seq);
  void armChangeTimer();
  bool workerAlive(pid_t pid) const;
  void saveJournal();
  void applyQueuedChanges();

  // Binary upgrade and socket activation (upgrade.cpp)
  void requestUpgrade(ApiReply reply);
  bool binaryChanged() const;
  void rememberBinary();
  void upgrade(const char* why);
  nlohmann::json inventory(std::vector<int>& fds) const;
  bool restoreFromInventory();
  void adoptActivatedSockets();

  MasterOptions options_;
  uv_loop_t loop_{};
  MasterPhase phase_ = MasterPhase::Starting;
  int exitStatus_ = 0;
  unsigned nextGenerationId_ = 1;
  ListenerSet listeners_;
  std::vector<std::unique_ptr<Generation>> generations_;  // oldest first
  std::vector<common::UvHandle<uv_signal_t>> signals_;
  common::UvHandle<uv_check_t> reaper_;
  common::UvHandle<uv_timer_t> reloadTimer_;
  Notifier notifier_;
  Generation* reloading_ = nullptr;      // the generation a reload is starting, until it serves
  bool reloadPending_ = false;           // a reload asked for while one ran: one more after it
  bool upgraded_ = false;                // this image was exec'd by a binary upgrade
  std::vector<std::string> lastErrors_;  // the last failed reload's errors (runtime API: errors)
  std::vector<ApiReply> reloadWaiters_;  // answered when the running reload ends
  std::vector<ApiReply> pendingReloadWaiters_;  // answered when the queued reload ends
  bool forceUpgrade_ = false;                   // the next reload re-execs even if unchanged
  ApiServer api_;
  std::unique_ptr<TlsZones> tlsZones_;  // made in the constructor, once the loop exists
  std::unique_ptr<HealthChecker> checker_;
  Zygote zygote_;  // forks workers (started on first need, restarted when it fails)  // likewise;
                   // checks run here, once per instance
  struct stat binary_ {};
  // Runtime changes: the journal (replayed onto every generation built from the file), changes
  // waiting for a reload to end, and those waiting for the workers' confirmation.
  Journal journal_;
  std::string stateFile_;                      // global.state_file of the newest generation built
  std::vector<std::string> journalConflicts_;  // of the last generation built; shown by `errors`
  std::vector<std::pair<nlohmann::json, ApiReply>> queuedChanges_;
  struct PendingDelete {
    Master* master;
    nlohmann::json request;
    ApiReply reply;
    uint64_t startedMs;
  };
  struct PendingChange {
    ApiReply reply;
    unsigned generation = 0;
    std::string description;  // "server.add bk_1 web3"
    std::vector<pid_t> waiting;
    std::vector<std::string> errors;
    uint64_t deadlineMs = 0;
  };
  std::map<std::uint64_t, PendingChange> pendingChanges_;
  std::uint64_t changeSeq_ = 0;
  common::UvHandle<uv_timer_t> changeTimer_;
};

bool isChangeCommand(const std::string& cmd);

}  // namespace molt::master
