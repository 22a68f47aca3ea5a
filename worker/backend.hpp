// A backend as a worker runs it: its servers and the choice of the next one.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "shm/server_state.hpp"
#include "shm/worker_stats.hpp"

namespace molt::worker {

inline constexpr std::uint64_t kRuntime = ~std::uint64_t{0};

// A server's description when the worker holds it itself: before the server-state zone is
// attached, without one (tests), in a draining worker that let the zone go, or when the runtime
// API changed its address.
struct ServerDescription {
  std::string name;
  common::SocketAddress address;
  unsigned weight = 1;
};

// A server as a worker's backend tracks it. Its name, address and weight are read from the
// generation's server-state zone (one copy for the whole instance), so a worker's own cost per
// server is this struct: flat in the number of workers.
struct Server {
  std::uint64_t zoneIndex = 0;  // its row: first + declared for the file's, the master's for others
  std::uint64_t declared = 0;   // its index among the file's servers; kRuntime if added later
  std::int64_t currentWeight = 0;  // smooth weighted round robin state
  std::uint32_t connections = 0;   // live connections from this worker
  bool removed = false;  // deleted at runtime: never picked again; its slot stays (stable index)
  // Bumped when the runtime API changes its address: a connection made before goes back to no
  // pool (ServerPool is keyed by the Server, which stays the same object).
  std::uint32_t addressEpoch = 0;
  std::unique_ptr<ServerDescription> own;  // see ServerDescription; null: read the zone
};

// Built from one BackendConfig, which it keeps (its server list aside: that becomes servers_).
// Shared: the worker, routers and frontends that send traffic to it, and each session connected
// through it hold a reference, so a draining worker frees every backend no connection uses.
class Backend : public std::enable_shared_from_this<Backend> {
 public:
  // With `state` (the generation's server-state zone, this backend's servers from row `first`),
  // servers are described by the zone; without, the backend keeps their descriptions.
  explicit Backend(common::BackendConfig config, const shm::ServerState* state = nullptr,
                   std::uint64_t first = 0);

  const std::string& name() const { return config_.name; }
  const common::BackendConfig& config() const { return config_; }
  // Its counters in the worker's stats zone (a process-local row when the zone has none left).
  shm::BackendRow& stats() const { return *stats_; }
  void setStats(shm::BackendRow* row) {
    stats_ = row ? row : &unsharedRow();
    statsSet_ = true;
  }
  bool statsSet() const { return statsSet_; }
  Server& server(int index) { return servers_[static_cast<size_t>(index)]; }
  std::string_view serverName(int index) const;
  common::SocketAddress serverAddress(int index) const;
  // The server named `name` (removed ones excluded); -1 when there is none.
  int find(std::string_view name) const;
  // Servers this worker may send traffic to: those not configured disabled.
  size_t size() const { return servers_.size(); }
  // Servers the config declares, disabled ones included (the server-state zone lists them all).
  size_t declared() const { return declared_; }

  // Picks a server by the backend's `balance` among servers that are not disabled, have a
  // weight above zero, are up and ready in the server-state zone (health checks, and later the
  // runtime API's drain/maint and weight) and are not in
  // `exclude` (servers this connection already tried). Returns its index, or -1 when none is
  // eligible. `client` is hashed by `source`; without it, `source` falls back to round robin.
  //   roundrobin  smooth weighted round robin (nginx's): proportional, without bursts
  //   leastconn   fewest connections per weight, counted across all workers (server-state
  //               zone); ties go round robin
  //   source      rendezvous hash of the client address, weighted: the same client keeps its
  //               server, and removing one of N servers moves only that server's clients
  //   random      power of two choices: two random servers, the less loaded one wins
  int pick(std::span<const int> exclude = {}, const common::SocketAddress* client = nullptr);
  // A connection to server `index` begins / ends (local and instance-wide counts).
  void connectionOpened(int index);
  void connectionClosed(int index);
  // Connections to server `index` from every worker of the generation (this worker's alone
  // without a server-state zone).
  unsigned load(int index) const;
  // Reads servers and their health from the generation's server-state zone, where this backend's
  // servers start at `first`; the descriptions held until then are dropped.
  void attachState(const shm::ServerState* state, std::uint64_t first);
  // Copies what the zone describes into the backend, then stops reading the zone: a draining
  // worker does this for the backends its live connections still use, then unmaps the zone.
  // Every server counts as up from then on.
  void detachState();

  // Runtime API (the master resolved and validated each change; see docs/api.md):
  // adds server `name`, or updates its address and configured weight when it exists (a server
  // configured disabled is not held until then). `zoneIndex`: its server-state row. Returns the
  // server when it existed and its address changed (its idle pooled connections must go).
  const Server* putServer(const std::string& name, const common::SocketAddress& address,
                          unsigned weight, std::uint64_t zoneIndex);
  // No new traffic to it; connections through it finish. Null when unknown, else the server.
  const Server* removeServer(std::string_view name);

 private:
  bool usable(int index, std::span<const int> exclude) const;
  // The zone's weight (the runtime API may have changed it), else the description's.
  unsigned weightOf(const Server& s) const {
    return state_ ? state_->weight(s.zoneIndex) : (s.own ? s.own->weight : 0);
  }
  void rebuildEligible();
  bool matchesZone(const Server& s, std::string_view name,
                   const common::SocketAddress& address) const;
  int pickRoundRobin(std::span<const int> exclude);
  int pickLeastConn(std::span<const int> exclude);
  int pickSource(std::span<const int> exclude, const common::SocketAddress& client);
  int pickRandom(std::span<const int> exclude);

  common::BackendConfig config_;  // without its servers
  static shm::BackendRow& unsharedRow() {
    static shm::BackendRow row{};
    return row;
  }
  shm::BackendRow* stats_ = &unsharedRow();
  bool statsSet_ = false;
  // Only servers not configured disabled: the seed's spare templates (99 of 101) cost a worker
  // nothing. A disabled server made ready at runtime comes from the server-state zone's table.
  // A deque: a server's address is stable while the runtime API adds others (the server pool
  // keys idle connections by it).
  std::deque<Server> servers_;
  size_t declared_ = 0;
  std::vector<int> eligible_;  // indices of servers that can take traffic, in config order
  const shm::ServerState* state_ = nullptr;
  std::uint64_t first_ = 0;
  std::uint32_t rotor_ = 0;  // leastconn tie-break: where the scan starts
  std::uint64_t random_;     // xorshift state for `random`
};

}  // namespace molt::worker
