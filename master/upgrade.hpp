// Binary upgrade: the master re-execs itself, keeping every worker, socket, zone and the runtime
// journal.
//
// Inventory (the only description of it; kInventoryVersion). Before exec the master writes one
// JSON document to a memfd named "molt-inventory" and names it in MOLT_INVENTORY_FD. Every
// descriptor the document names has close-on-exec cleared, so the new image owns the same
// numbers:
//   {"version" (master/inventory_check.hpp), "config_path", "next_generation",
//    "last_errors": [..], "journal": TEXT,
//    "state_file", "servers_down": [[backend, server], ..],
//    "listeners":   [{"key", "fd", "backlog", "bound"}],      every socket the master holds
//    "tls_zones":   {"session_cache": {"fd", "size"}, "ticket_keys": {"fd"}, "rotation_ms"},
//    "api":         {"fd", "path", "uids"},
//    "api_clients": [{"fd", "seq"}],   connections waiting for the reload's answer (request seq)
//    "metrics":     {"fd", "address", "counters", "retired", "samples", "started"}
//                   (Metrics::inventory; the endpoint's socket when it listens),
//    "generations": [Generation::inventory(): {"id", "phase", "bundle_fd", "session_cache_fd",
//                    "server_state_fd", "drain_started_ms", "hard_stop_at_ms", "terminating",
//                    "listeners": [{"frontend", "bind", "key"}],
//                    "slots": [{"slot", "pid", "pidfd", "control_fd", "phase", "connections",
//                               "started_ms", "counters": WorkerCounters::inventory()}]}]}
// Times are CLOCK_MONOTONIC milliseconds. A slot with pid 0 had no live process (respawn due).
// The master's pid does not change across exec, so workers remain its children and notice
// nothing; their control sockets and pidfds simply change owners.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"
#include "common/uv_handle.hpp"
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

namespace molt::master {

// The parts of the master whose state crosses the exec.
struct UpgradeParts {
  uv_loop_t* loop;
  Supervisor& supervisor;
  ListenerSet& listeners;
  TlsZones& tlsZones;
  ApiServer& api;
  ChangeCoordinator& changes;
  Reloader& reloader;
  GenerationBuilder& builder;
  HealthChecker& checker;
  Notifier& notifier;
  Metrics& metrics;
};

// Master process, master loop. A binary upgrade is never an outage: the new binary first checks
// that it can take over (check: `molt --upgrade-check`, run from the very file that will be
// exec'd), and if it still fails while taking over, it re-execs the previous binary, which takes
// the same inventory back (master/takeover_guard.hpp). Clients waiting on the API are handed over
// and get the real result from whichever image serves.
class Upgrader {
 public:
  // `binaryPath`: the file on disk re-exec'd; `argv`: the master's own command line.
  Upgrader(std::string binaryPath, std::vector<std::string> argv, UpgradeParts parts);
  ~Upgrader();
  Upgrader(const Upgrader&) = delete;
  Upgrader& operator=(const Upgrader&) = delete;

  // True when the file at binaryPath is no longer the one this image was exec'd from (or last
  // tried).
  bool binaryChanged() const;
  // Opens the binary on disk and runs its `--upgrade-check` (at most 10 s); `done` gets "" when
  // it can take over, else why not (a refused binary is not tried again until it changes).
  void check(std::function<void(const std::string& error)> done);
  void cancelCheck();
  // Writes the inventory (with `waiters`' connections) and re-execs the checked binary. Returns
  // only if that failed, with the reason: the running binary goes on.
  std::string upgrade(const char* why, const std::vector<ApiReply>& waiters);
  // In the new image: true when this process was exec'd by an upgrade, with every part restored
  // from the inventory (generations adopted, their missing workers respawned).
  bool restore();
  // After restore(): the API clients the previous image handed over, to answer when the reload
  // that follows ends; and, in an image that took over again after a failed upgrade, what failed.
  std::vector<ApiReply> takeHandedWaiters() { return std::move(handedWaiters_); }
  const std::string& failure() const { return failure_; }

 private:
  void rememberBinary();
  void checkExited(int64_t status, int signal);
  nlohmann::json inventory(std::vector<int>& fds, const std::vector<ApiReply>& waiters) const;
  void adopt(const nlohmann::json& doc);
  std::map<std::string, std::shared_ptr<Listener>> restoreListeners(const nlohmann::json& doc);
  void restoreGenerations(const nlohmann::json& doc,
                          const std::map<std::string, std::shared_ptr<Listener>>& byKey);
  void restoreHealth(const nlohmann::json& doc);

  std::string binaryPath_;
  std::vector<std::string> argv_;
  UpgradeParts parts_;
  struct stat binary_ {};
  common::UniqueFd candidate_;    // the binary checked, the one exec'd
  common::UniqueFd checkOutput_;  // the check's stderr
  common::UvHandle<uv_process_t> checkProcess_;
  common::UvHandle<uv_timer_t> checkTimer_;
  std::function<void(const std::string&)> checkDone_;
  std::vector<ApiReply> handedWaiters_;
  std::string failure_;
};

}  // namespace molt::master
