// The master process: the composition root. It owns the loop, the signals and one of each part,
// and wires them; each part owns one duty (docs/architecture.md):
//   Supervisor          generations and worker processes (spawn, respawn, promote, drain, reap)
//   GenerationBuilder   a generation from the config file
//   Reloader            reloads as a state machine
//   ChangeCoordinator   the runtime API's changes and their journal
//   Upgrader            binary upgrade (re-exec) and its inventory
//   ApiCommands         the runtime API's commands, over ApiServer
//   TlsZones, HealthChecker, ListenerSet, Notifier
// The master never proxies.
#pragma once

#include <uv.h>

#include <string>
#include <vector>

#include "common/uv_handle.hpp"
#include "master/api.hpp"
#include "master/api_server.hpp"
#include "master/changes.hpp"
#include "master/generation_builder.hpp"
#include "master/health_check.hpp"
#include "master/listener.hpp"
#include "master/metrics.hpp"
#include "master/notify.hpp"
#include "master/reload.hpp"
#include "master/supervisor.hpp"
#include "master/tls_zones.hpp"
#include "master/upgrade.hpp"

namespace molt::master {

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
  // The loop outlives every part: constructed first, it runs the parts' close callbacks after
  // they are destroyed.
  struct Loop {
    uv_loop_t loop{};
    Loop() { uv_loop_init(&loop); }
    ~Loop() {
      uv_run(&loop, UV_RUN_DEFAULT);
      uv_loop_close(&loop);
    }
  };

  BuildOutcome build(const char* why, bool reload);
  void onServing(Generation& generation);
  void onSignal(int signal);
  void beginStop(bool graceful, const char* why);
  void exitIfDone();

  MasterOptions options_;
  Loop loop_;
  Notifier notifier_;
  ListenerSet listeners_;
  TlsZones tlsZones_;
  HealthChecker checker_;
  Supervisor supervisor_;
  GenerationBuilder builder_;
  Reloader reloader_;
  ChangeCoordinator changes_;
  Metrics metrics_;
  ApiCommands commands_;
  ApiServer api_;
  Upgrader upgrader_;
  std::vector<common::UvHandle<uv_signal_t>> signals_;
};

}  // namespace molt::master
