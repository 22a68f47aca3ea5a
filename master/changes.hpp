// The runtime API's change commands (server.*, backend.*, cert.*, map.*; docs/api.md) in the
// master, and the journal that makes them outlive the config they were applied to.
//
// A change is validated and applied to the serving generation's config (common/runtime_change),
// published to its zone and workers by its kind (master/change_kinds.hpp), journalled
// (master/journal.hpp: replayed on every reload and binary upgrade, saved to
// global.state_file), and answered once every worker applied it. Draining generations never get
// changes; a change that arrives during a reload waits for the new generation to serve.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/control_messages.hpp"
#include "common/uv_handle.hpp"
#include "master/api_server.hpp"
#include "master/health_check.hpp"
#include "master/journal.hpp"
#include "master/supervisor.hpp"

namespace molt::master {

// Master process, master loop.
class ChangeCoordinator {
 public:
  // `reloading` says whether a reload is under way (changes then wait for it).
  ChangeCoordinator(uv_loop_t* loop, Supervisor& supervisor, HealthChecker& checker,
                    std::function<bool()> reloading);
  ~ChangeCoordinator();
  ChangeCoordinator(const ChangeCoordinator&) = delete;
  ChangeCoordinator& operator=(const ChangeCoordinator&) = delete;

  // A change command from the API, by `peer` (files it names are read with the peer's
  // permissions); `reply` is called once, when it applied or failed.
  void handle(const nlohmann::json& request, const ApiPeer& peer, ApiReply reply);
  // A worker's answer to a change.
  void onChanged(WorkerProcess& worker, const control::Changed& changed);
  // Changes that waited for a reload to end, applied in arrival order.
  void applyQueued();

  // The journal every generation built from the file replays.
  const Journal& journal() const { return journal_; }
  // After a generation was built from the file: `replayed` is the journal without the entries
  // that no longer applied (`conflicts`, logged and returned as lines for `errors`), and
  // `stateFile` the new config's global.state_file.
  std::vector<std::string> adopt(Journal replayed, const std::vector<JournalConflict>& conflicts,
                                 std::string stateFile);
  // Binary upgrade: the journal and state file as the previous image had them.
  const std::string& stateFile() const { return stateFile_; }
  void restore(Journal journal, std::string stateFile);

 private:
  struct Pending {
    ApiReply reply;
    unsigned generation = 0;
    std::string description;  // "server.add bk_1 web3"
    std::vector<pid_t> waiting;
    std::vector<std::string> errors;
    uint64_t deadlineMs = 0;
  };
  // A change waiting for connections to end (ChangeKind::busy) before it applies.
  struct Waiting {
    nlohmann::json request;
    ApiPeer peer;
    ApiReply reply;
    uint64_t startedMs = 0;
    common::UvHandle<uv_timer_t> timer;
  };

  struct Queued {
    nlohmann::json request;
    ApiPeer peer;
    ApiReply reply;
  };
  void handleWhenIdle(const nlohmann::json& request, const ApiPeer& peer, ApiReply reply,
                      uint64_t startedMs);
  void waitForIdle(const nlohmann::json& request, const ApiPeer& peer, ApiReply reply,
                   uint64_t startedMs);
  void apply(Generation& serving, const nlohmann::json& request, const ApiPeer& peer,
             ApiReply reply);
  void broadcast(Generation& serving, std::vector<control::ChangeOp> ops, ApiReply reply,
                 std::string description);
  void finishIfDone(std::uint64_t seq);
  void armTimer();
  void saveJournal();

  uv_loop_t* loop_;
  Supervisor& supervisor_;
  HealthChecker& checker_;
  std::function<bool()> reloading_;
  Journal journal_;
  std::string stateFile_;  // global.state_file of the newest generation built
  std::vector<Queued> queued_;
  std::list<Waiting> waiting_;
  std::map<std::uint64_t, Pending> pending_;
  std::uint64_t seq_ = 0;
  common::UvHandle<uv_timer_t> timer_;
};

}  // namespace molt::master
