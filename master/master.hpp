// The master process: owns generations, listeners and worker supervision; never proxies.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "common/uv_handle.hpp"
#include "master/generation.hpp"
#include "master/listener.hpp"

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
  std::string exe;  // what workers exec: normally /proc/self/exe
};

class Master {
 public:
  explicit Master(MasterOptions options);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Loads the config, starts the first generation and runs until stopped. Returns the process
  // exit status: 0 after a stop, 1 when the first generation could not be built.
  int run();

 private:
  bool startGeneration(const char* why);
  void spawnSlot(Generation& generation, unsigned slot);
  void onWorkerMessage(Generation& generation, WorkerProcess& worker,
                       common::ControlMessage&& message);
  void onWorkerReady(Generation& generation, WorkerProcess& worker);
  void onWorkerExit(Generation& generation, WorkerProcess& worker, int status);
  void scheduleRespawn(Generation& generation, unsigned slot);
  void promote(Generation& generation);
  void drainGeneration(Generation& generation, const char* why);
  void onSignal(int signal);
  void reload();
  void beginStop(bool graceful, const char* why);
  void onStopDeadline();
  void reapGenerations();
  void exitIfDone();
  Generation* current() const;

  MasterOptions options_;
  uv_loop_t loop_{};
  MasterPhase phase_ = MasterPhase::Starting;
  int exitStatus_ = 0;
  unsigned nextGenerationId_ = 1;
  ListenerSet listeners_;
  std::vector<std::unique_ptr<Generation>> generations_;  // oldest first
  std::vector<common::UvHandle<uv_signal_t>> signals_;
  common::UvHandle<uv_check_t> reaper_;
  common::UvHandle<uv_timer_t> stopTimer_;
  bool killSent_ = false;
};

}  // namespace molt::master
