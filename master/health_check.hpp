// Health checks, run by the master once for the whole instance (never by workers).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/config.hpp"
#include "common/uv_handle.hpp"

namespace molt::master {

// A server to check, as the current generation's config describes it.
struct CheckTarget {
  std::string backend, server;
  common::SocketAddress address;
  common::CheckConfig check;
};

// What a state change reports: the server, its new state, why, and how long the deciding
// check took.
struct HealthEvent {
  const CheckTarget& target;
  bool up;
  std::string reason;
  uint64_t checkMs;
};

// Runs tcp (connect) and http (request, status range) checks with per-target interval, timeout,
// rise and fall, at most `maxInFlight` at once. First checks are spread over each interval so a
// reload of 10k servers does not open 10k sockets at once. A check owns a socket and a small
// buffer only while it runs. State is kept by backend/server name across setTargets() (a reload):
// a server that was down stays down until it passes `rise` checks; a server never seen before
// starts up. Master process, master loop only.
class HealthChecker {
 public:
  using Listener = std::function<void(const HealthEvent&)>;

  HealthChecker(uv_loop_t* loop, Listener onChange, size_t maxInFlight = 256);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Called for every failed check (for the metrics).
  void onFailure(std::function<void(const CheckTarget&)> hook) { onFailure_ = std::move(hook); }
  // Replaces the checked set. Targets no longer present are forgotten (their checks cancelled).
  void setTargets(std::vector<CheckTarget> targets);
  // Sets a target's state without a check (binary upgrade: the state the previous image found,
  // read back from the server-state zone). Unknown names are ignored.
  void assume(const std::string& backend, const std::string& server, bool up);
  // Current state; a name not checked is reported up.
  bool isUp(const std::string& backend, const std::string& server) const;
  // Every checked server found down, as (backend, server) (binary upgrade: the next image
  // assumes these).
  std::vector<std::pair<std::string, std::string>> down() const;
  // Largest number of checks that ran at once since start (for tests and stats).
  size_t peakInFlight() const { return peakInFlight_; }
  // Builds the targets of every checked, not disabled server of `config`.
  static std::vector<CheckTarget> targetsOf(const common::Config& config);

  class Probe;

 private:
  struct State {
    CheckTarget target;
    bool up = true;
    unsigned successes = 0, failures = 0;  // consecutive, toward rise / fall
    uint64_t epoch = 0;                    // bumped when the target is replaced or removed
    bool running = false;
  };
  struct Due {
    uint64_t at;
    std::string key;
    uint64_t epoch;
    bool operator>(const Due& other) const { return at > other.at; }
  };

  void schedule(const std::string& key, State& state, uint64_t delayMs);
  void armTimer();
  void onTimer();
  void startProbe(const std::string& key, State& state);
  void finish(const std::string& key, uint64_t epoch, bool ok, std::string reason, uint64_t ms);

  uv_loop_t* loop_;
  Listener onChange_;
  size_t maxInFlight_;
  size_t inFlight_ = 0, peakInFlight_ = 0;
  uint64_t nextEpoch_ = 1;
  std::unordered_map<std::string, State> targets_;  // key: "backend/server"
  std::function<void(const CheckTarget&)> onFailure_;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  std::vector<Due> waiting_;  // due, but over the in-flight bound
  common::UvHandle<uv_timer_t> timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace molt::master
