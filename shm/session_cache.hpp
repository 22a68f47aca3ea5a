// The TLS session cache: one zone shared by every worker of every generation.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "shm/cache_shard.hpp"
#include "shm/robust_mutex.hpp"
#include "shm/zone.hpp"

namespace molt::shm {

// Totals over the shards, read without locking (see ShardCounters): good for monitoring, not an
// atomic snapshot.
struct SessionCacheStats {
  std::uint64_t entries = 0, bytes = 0;  // live entries and the bytes they are charged
  std::uint64_t hits = 0, misses = 0, stores = 0;
  std::uint64_t evictions = 0;       // least recently used entries pushed out to make room
  std::uint64_t expirations = 0;     // entries dropped after their timeout
  std::uint64_t lockRecoveries = 0;  // shards wiped after their lock holder died
  std::uint64_t lockFailures = 0;    // operations skipped: a shard lock not obtained in time
  std::uint64_t wipes = 0;           // shards wiped because their links did not check out
  std::uint32_t shards = 0;
  std::uint64_t capacity = 0;  // bytes of all shard regions
};

// Serialized sessions by key (a TLS session id, or a longer identity, hashed), sharded, each
// shard an LRU by bytes behind its own robust mutex, entries expiring after their ttl. Any
// process mapping the zone may call anything; every call is bounded in time (kLockTimeout) and
// never throws, so it is safe inside OpenSSL callbacks. Owns its zone: destroying it unmaps.
class SessionCache {
 public:
  static constexpr std::uint32_t kLayoutVersion = 1;
  static constexpr std::uint32_t kMaxShards = 64;
  static constexpr std::uint64_t kMinShardBytes = 64 * 1024;
  static constexpr std::uint64_t kMinZoneBytes = 128 * 1024;
  static constexpr std::size_t kMaxValueBytes = CacheShard::kMaxValueBytes;
  static constexpr std::chrono::milliseconds kLockTimeout{50};
  using Clock = std::chrono::steady_clock;

  // Master: a new zone of `bytes` with `shards` shards (0: chosen from the size; else a power of
  // two). Touches only the header and the shard table. nullptr + `error` on failure.
  static std::unique_ptr<SessionCache> create(std::uint64_t bytes, std::string& error,
                                              std::uint32_t shards = 0);
  // Worker, or the master after exec: attaches to the zone in `fd` (which must be `bytes`
  // long; 0: any). nullptr + `error` when the zone is not a session cache of this layout.
  static std::unique_ptr<SessionCache> attach(common::UniqueFd fd, std::uint64_t bytes,
                                              std::string& error);

  ~SessionCache();
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;

  // Stores `value` (at most kMaxValueBytes) under `key` for `ttl`. False when refused.
  bool store(std::span<const std::uint8_t> key, std::span<const std::uint8_t> value,
             std::chrono::seconds ttl, Clock::time_point now = Clock::now()) noexcept;
  // Copies the value of `key` into `value`. False on a miss (absent, expired, shard busy).
  bool lookup(std::span<const std::uint8_t> key, std::vector<std::uint8_t>& value,
              Clock::time_point now = Clock::now()) noexcept;
  // Drops `key`. False when it was not there.
  bool remove(std::span<const std::uint8_t> key) noexcept;

  // Any process (the master for the runtime API), without taking a lock.
  SessionCacheStats stats() const noexcept;
  // A power of two, fixed when the zone was created.
  std::uint32_t shardCount() const;
  // The shard `key` lives in, and its mutex: for tests and diagnostics only.
  std::uint32_t shardOf(std::span<const std::uint8_t> key) const;
  RobustMutex& shardMutex(std::uint32_t shard);
  // A shard's region: its bytes, of which the first `indexBytes` are its index. For tests that
  // play a process scribbling on the zone.
  struct RegionView {
    char* region;
    std::uint64_t bytes, indexBytes;
  };
  RegionView shardRegion(std::uint32_t shard) const;
  // The zone, for the master to hand its fd to workers.
  Zone& zone() { return zone_; }

 private:
  struct Header {
    std::uint32_t shards;
    std::uint32_t buckets;
    std::uint64_t shardBytes;
    std::uint64_t shardsOffset;
    std::uint64_t reserved[5];
  };
  struct ShardControl;
  class Locked;
  SessionCache(Zone zone, Header layout);

  Header& header() const;
  ShardControl& control(std::uint32_t shard) const;
  char* region(std::uint32_t shard) const;
  void wipe(std::uint32_t shard, const char* why) noexcept;

  Zone zone_;
  // The zone's layout as this process computed it when it created or attached the zone: every
  // process writes the zone, so nothing is ever re-read from its header.
  Header layout_;
};

}  // namespace molt::shm
