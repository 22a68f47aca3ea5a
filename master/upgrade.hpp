// Binary upgrade: the master re-execs itself, keeping every worker, socket, zone and the runtime
// journal.
//
// Inventory (the only description of it; kInventoryVersion). Before exec the master writes one
// JSON document to a memfd named "molt-inventory" and names it in MOLT_INVENTORY_FD. Every
// descriptor the document names has close-on-exec cleared, so the new image owns the same
// numbers:
//   {"version", "config_path", "next_generation", "last_errors": [..], "journal": TEXT,
//    "state_file", "servers_down": [[backend, server], ..],
//    "listeners":   [{"key", "fd", "backlog", "bound"}],      every socket the master holds
//    "tls_zones":   {"session_cache": {"fd", "size"}, "ticket_keys": {"fd"}, "rotation_ms"},
//    "api":         {"fd", "path", "uids"},
//    "generations": [Generation::inventory(): {"id", "phase", "bundle_fd", "session_cache_fd",
//                    "server_state_fd", "drain_started_ms", "hard_stop_at_ms", "terminating",
//                    "listeners": [{"frontend", "bind", "key"}],
//                    "slots": [{"slot", "pid", "pidfd", "control_fd", "phase", "connections",
//                               "started_ms"}]}]}
// Times are CLOCK_MONOTONIC milliseconds. A slot with pid 0 had no live process (respawn due).
// The master's pid does not change across exec, so workers remain its children and notice
// nothing; their control sockets and pidfds simply change owners.
#pragma once

#include <sys/stat.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "master/api_server.hpp"
#include "master/changes.hpp"
#include "master/generation_builder.hpp"
#include "master/health_check.hpp"
#include "master/listener.hpp"
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
};

// Master process, master loop.
class Upgrader {
 public:
  // `binaryPath`: the file on disk re-exec'd; `argv`: the master's own command line.
  Upgrader(std::string binaryPath, std::vector<std::string> argv, UpgradeParts parts);

  // True when the file at binaryPath is no longer the one this image was exec'd from (or last
  // tried).
  bool binaryChanged() const;
  // Writes the inventory and re-execs. Returns only if that failed: the running binary goes on
  // (and will not retry the same file on the next reload).
  void upgrade(const char* why);
  // In the new image: true when this process was exec'd by an upgrade, with every part restored
  // from the inventory (generations adopted, their missing workers respawned).
  bool restore();

 private:
  void rememberBinary();
  nlohmann::json inventory(std::vector<int>& fds) const;
  std::map<std::string, std::shared_ptr<Listener>> restoreListeners(const nlohmann::json& doc);
  void restoreGenerations(const nlohmann::json& doc,
                          const std::map<std::string, std::shared_ptr<Listener>>& byKey);
  void restoreHealth(const nlohmann::json& doc);

  std::string binaryPath_;
  std::vector<std::string> argv_;
  UpgradeParts parts_;
  struct stat binary_ {};
};

}  // namespace molt::master
