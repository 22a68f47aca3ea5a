// The runtime API's change kinds, as the master handles them: one registry entry per kind.
//
// A change kind has one place per side:
//   common/runtime_change*.cpp  validation and application to the config model (every process)
//   here                        what applying it means for the serving generation: zone rows,
//                               health checks, the operations its workers get, and how its
//                               journal entry folds into the journal
//   worker/changes.cpp          the worker's application of those operations
// and one wire form per operation in common/control_messages.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/config.hpp"
#include "common/control_messages.hpp"
#include "master/generation.hpp"

namespace molt::master {

class Journal;

// What applying a change to the serving generation produced.
struct Publication {
  std::vector<control::ChangeOp> ops;  // for each worker, in order
  bool checksChanged = false;          // the checked set must be recomputed
  std::string zoneError;               // the zone had no room (logged)
};

// Rows of the server-state zone a deletion removes: server name and row, read before the config
// forgets them.
using RemovedRows = std::vector<std::pair<std::string, std::uint64_t>>;

struct ChangeKind {
  std::string_view cmd;  // the API command: "server.add"
  // Before anything is applied: "" or why `serving` cannot take the change (no zone room).
  std::string (*refuse)(const Generation& serving, const nlohmann::json& request) = nullptr;
  // Connections that must end before the change applies, the server set draining meanwhile
  // (server.del); 0 when it may apply now.
  std::uint32_t (*busy)(Generation& serving, const nlohmann::json& request) = nullptr;
  // What the change will remove, read from the config before it is applied.
  RemovedRows (*removes)(const common::Config& config, const nlohmann::json& request) = nullptr;
  // Publishes the applied change (as applyRuntimeChange left it) to the zone and the workers.
  void (*publish)(Generation& serving, const nlohmann::json& change, const RemovedRows& removed,
                  Publication& out) = nullptr;
  // Folds the journal entry into `journal` before it is appended: drops the entries it
  // supersedes. Returns true when the change cancels out against them and is not appended.
  bool (*fold)(Journal& journal, const nlohmann::json& change) = nullptr;
};

// The kind of API command `cmd`, or nullptr.
const ChangeKind* findChangeKind(std::string_view cmd);
// Every kind, in the order the API documents them.
const std::vector<ChangeKind>& changeKinds();

}  // namespace molt::master
