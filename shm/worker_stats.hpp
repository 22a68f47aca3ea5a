// One worker's counters in shared memory: written by that worker alone, read by the master, which
// folds them into the instance's metrics (master/metrics.hpp).
//
// Zone kind 5 ("molt-worker-stats"), layout version 1, one zone per worker process, created by
// the master before the worker starts and granted only to it (a worker cannot reach another's
// counters):
//   64    StatsHeader {u32 frontends, u32 backend rows, u64 reserved[7]}
//   128   WorkerRow, 64 bytes: {atomic u64 connections (open now), u64 reserved[7]}
//   192   FrontendRow[frontends], 128 bytes each, in the config's frontend order:
//           atomic u64 connections, http requests, responses by class [1xx..5xx], bytes in,
//           bytes out, TLS handshakes [full, resumed], u64 reserved[5]
//         BackendRow[backend rows], 384 bytes each, claimed by the worker in the order it
//         builds its backends (the file's, then those the runtime API adds):
//           atomic u32 name length (0: row free; stored last, with release), u32 reserved,
//           char name[248], atomic u64 http requests, responses, response time sum (µs),
//           response time buckets[13] (not cumulative: kResponseBuckets, then +Inf)
// Every counter only grows; the worker writes each with a plain relaxed store (it is the only
// writer), so the hot path costs an add, no locked instruction.
//
// Trust: the master fixes the layout (frontends, rows) when it creates the zone and keeps it in
// its own memory; what it reads back are numbers it folds monotonically (a value lower than the
// last one read is ignored) and backend names it validates before using them as labels.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "shm/zone.hpp"

namespace molt::shm {

// Upper bounds of the response-time histogram, in microseconds (then +Inf).
inline constexpr std::array<std::uint64_t, 12> kResponseBuckets = {
    1'000,   5'000,   10'000,    25'000,    50'000,    100'000,
    250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};
inline constexpr std::size_t kBucketCount = kResponseBuckets.size() + 1;
inline constexpr std::size_t kMaxStatsName = 248;

using Counter = std::atomic<std::uint64_t>;

// One writer: a relaxed load and store, no read-modify-write.
inline void bump(Counter& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct StatsHeader {
  std::uint32_t frontends;
  std::uint32_t backends;
  std::uint64_t reserved[7];
};
static_assert(sizeof(StatsHeader) == 64);

struct WorkerRow {
  Counter connections;  // a gauge: open client connections
  // The fleet tier's session lookups (worker/tls/fleet_sessions.hpp): asked, answered with a
  // session that checked out, given up after fleet.lookup_timeout, answered with bytes that did
  // not check out; sessions written; and a gauge, 1 while this worker's Redis link is up.
  Counter fleetLookups, fleetHits, fleetTimeouts, fleetRefused, fleetStores, fleetUp;
  std::uint64_t reserved[1];
};
static_assert(sizeof(WorkerRow) == 64);

struct FrontendRow {
  Counter connections, requests;
  Counter responses[5];  // 1xx .. 5xx
  Counter bytesIn, bytesOut;
  Counter tlsFull, tlsResumed;
  std::uint64_t reserved[5];
};
static_assert(sizeof(FrontendRow) == 128);

struct BackendRow {
  std::atomic<std::uint32_t> nameLength;
  std::uint32_t reserved;
  char name[kMaxStatsName];
  Counter requests, responses, responseMicros;
  Counter buckets[kBucketCount];
};
static_assert(sizeof(BackendRow) == 384);

// Where everything is: a function of (frontends, backend rows) alone.
struct StatsLayout {
  std::uint32_t frontends = 0, backends = 0;
  std::uint64_t workerOffset = 0, frontendsOffset = 0, backendsOffset = 0, size = 0;
  static StatsLayout of(std::uint32_t frontends, std::uint32_t backends);
};

// Records one response time into a backend row.
void recordResponse(BackendRow& row, std::uint64_t micros) noexcept;

class WorkerStats {
 public:
  // Master: a new zone for one worker.
  static std::unique_ptr<WorkerStats> create(StatsLayout layout, std::string& error);
  // Worker: the zone the master granted, its layout as the header gives it (checked against the
  // zone's size and the worker's own count of frontends).
  static std::unique_ptr<WorkerStats> attach(common::UniqueFd fd, std::uint64_t size,
                                             std::uint32_t frontends, std::string& error);
  // Master after exec: the zone of a worker it adopts, with the layout the inventory recorded.
  static std::unique_ptr<WorkerStats> adopt(common::UniqueFd fd, StatsLayout layout,
                                            std::string& error);

  const StatsLayout& layout() const { return layout_; }
  Zone& zone() { return zone_; }
  const Zone& zone() const { return zone_; }

  WorkerRow& worker() const { return *at<WorkerRow>(layout_.workerOffset); }
  FrontendRow& frontend(std::uint32_t index) const {
    return at<FrontendRow>(layout_.frontendsOffset)[index];
  }
  BackendRow& backend(std::uint32_t index) const {
    return at<BackendRow>(layout_.backendsOffset)[index];
  }
  // Worker: the next free backend row, named `name`; nullptr when none is left or the name does
  // not fit.
  BackendRow* claimBackend(std::string_view name);
  // Master: the name of row `index` if it holds a valid one (length within bounds, name
  // characters only), copied out of the zone; empty otherwise.
  std::string backendName(std::uint32_t index) const;

 private:
  WorkerStats(Zone zone, StatsLayout layout) : zone_(std::move(zone)), layout_(layout) {}
  template <typename T>
  T* at(std::uint64_t offset) const {
    return reinterpret_cast<T*>(zone_.data() + offset);
  }

  Zone zone_;
  StatsLayout layout_;
  std::uint32_t claimed_ = 0;  // worker: rows claimed so far
};

}  // namespace molt::shm
