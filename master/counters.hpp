// Counters the master keeps for its metrics (master/metrics.hpp): what it folds from workers'
// stats zones, and what it counts itself (reloads, runtime changes).
//
// Monotonic by construction: each worker's counters are folded with max() against the last
// value read (a worker cannot make a total go down, only stop growing), and a worker that exits
// leaves its last values in the retired totals, added to every later scrape. Both cross a binary
// upgrade in the inventory.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "shm/worker_stats.hpp"

namespace molt::master {

struct FrontendTotals {
  std::uint64_t connections = 0, requests = 0, responses[5] = {}, bytesIn = 0, bytesOut = 0,
                tlsFull = 0, tlsResumed = 0;
  void add(const FrontendTotals& other);
};

struct BackendTotals {
  std::uint64_t requests = 0, responses = 0, micros = 0, buckets[shm::kBucketCount] = {};
  void add(const BackendTotals& other);
};

// Counters by frontend and backend name.
struct CounterTotals {
  std::map<std::string, FrontendTotals, std::less<>> frontends;
  std::map<std::string, BackendTotals, std::less<>> backends;
  void add(const CounterTotals& other);
  nlohmann::json toJson() const;
  // The inverse of toJson; fields missing or of the wrong type read as zero.
  static CounterTotals fromJson(const nlohmann::json& doc);
};

// One worker's counters: its zone (the master's mapping) and the highest values read from it.
class WorkerCounters {
 public:
  // `frontends`: the generation's frontend names, in the order of the zone's rows.
  WorkerCounters(std::unique_ptr<shm::WorkerStats> zone, std::vector<std::string> frontends);

  // Reads the zone: every counter keeps the highest value seen; a backend row keeps the first
  // valid name it showed.
  void fold();
  // The folded values, by name, added to `totals`.
  void addTo(CounterTotals& totals) const;
  // The worker's open connections as it last wrote them (a gauge; bounded for display).
  std::uint64_t connections() const;
  const shm::WorkerStats& zone() const { return *zone_; }
  int fd() const { return zone_->zone().fd(); }

  // Binary upgrade: the zone's descriptor (appended to `fds`), its layout, the frontend names
  // and the folded values; restore() gives the same object back in the next image.
  nlohmann::json inventory(std::vector<int>& fds) const;
  static std::unique_ptr<WorkerCounters> restore(const nlohmann::json& entry, std::string& error);

 private:
  std::unique_ptr<shm::WorkerStats> zone_;
  std::vector<std::string> frontendNames_;  // by row: the master's own, never read from the zone
  std::vector<FrontendTotals> frontends_;   // by row
  std::vector<std::string> backendNames_;   // by row, as first read ("" while unnamed)
  std::vector<BackendTotals> backends_;     // by row
};

// A Prometheus histogram kept by the master.
struct Histogram {
  std::vector<double> bounds;         // upper bounds, ascending; +Inf follows
  std::vector<std::uint64_t> counts;  // per bucket, not cumulative (bounds.size() + 1)
  double sum = 0;
  std::uint64_t count = 0;
  explicit Histogram(std::vector<double> upperBounds);
  void observe(double value);
  nlohmann::json toJson() const;
  void fromJson(const nlohmann::json& doc);  // keeps what does not match its bounds
};

// What the master counts itself.
struct MasterCounters {
  std::uint64_t reloadsOk = 0, reloadsFailed = 0;
  Histogram reloadSeconds{{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  std::map<std::pair<std::string, std::string>, std::uint64_t> changes;        // (kind, result)
  std::map<std::pair<std::string, std::string>, std::uint64_t> checkFailures;  // (backend, server)
  // Last values of the session cache's own counters (the zone survives reloads; a new one, after
  // a size change, starts from zero and these carry the old ones).
  std::uint64_t cacheHitsBase = 0, cacheMissesBase = 0, cacheHitsLast = 0, cacheMissesLast = 0;

  nlohmann::json toJson() const;
  void fromJson(const nlohmann::json& doc);
};

}  // namespace molt::master
