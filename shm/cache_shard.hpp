// One session-cache shard: an index and an LRU list inside a Boost.Interprocess managed buffer.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include <boost/interprocess/indexes/iset_index.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>
#include <boost/interprocess/sync/mutex_family.hpp>

namespace molt::shm {

// The allocator of a shard region. null_mutex_family: the shard's RobustMutex guards it.
using ShardSegment = boost::interprocess::basic_managed_external_buffer<
    char, boost::interprocess::rbtree_best_fit<boost::interprocess::null_mutex_family>,
    boost::interprocess::iset_index>;

// Per-shard statistics, in the zone. Written by the lock holder, read by anyone without the
// lock: each counter is exact, a set of them read together is not a snapshot.
struct ShardCounters {
  std::atomic<std::uint64_t> entries, bytes, hits, misses, stores, evictions, expirations,
      lockRecoveries, lockFailures;
};

// A key as stored: at most kMaxKeyBytes (longer keys were hashed by the caller).
struct CacheKey {
  static constexpr std::size_t kMaxBytes = 32;
  std::uint8_t bytes[kMaxBytes];
  std::uint8_t size;
  std::uint64_t hash;
};

// A shard region as seen by the process holding the shard's lock: an index (LRU ends and
// bucket heads, all offsets) of `indexBytes` at the region's start, where all-zero bytes are a
// valid empty index, then the managed buffer holding the entries. Not thread-safe; every call
// must run under the lock. Times are milliseconds of CLOCK_MONOTONIC (the same clock in every
// process of the machine).
class CacheShard {
 public:
  // Bytes of the index of a shard with `buckets` buckets (a multiple of the page size).
  static std::uint64_t indexBytes(std::uint32_t buckets);
  // Lays an empty allocator over the region after the index; the index must already be zero
  // (a fresh or hole-punched region). False when the region is too small. Never throws.
  static bool build(char* region, std::uint64_t bytes, std::uint32_t buckets) noexcept;

  // Values larger than this are refused (and read as corruption).
  static constexpr std::uint32_t kMaxValueBytes = 16 * 1024;

  // Opens the allocator laid over the region; throws when its header does not read back.
  CacheShard(char* region, std::uint64_t bytes, std::uint32_t buckets, ShardCounters& counters);

  // True once a link read from the region did not check out (outside the region, misaligned, a
  // cycle, an entry not on its chain): the shard must be wiped, and the call that found it
  // failed.
  bool corrupt() const { return corrupt_; }

  // Copies the value of `key` into `out` and makes it the most recently used; an expired entry
  // is dropped. Counts a hit or a miss. False on a miss (or when `out` cannot grow).
  bool find(const CacheKey& key, std::int64_t now, std::vector<std::uint8_t>& out) noexcept;
  // Stores (or replaces) `key`, evicting least recently used entries until it fits; sweeps a few
  // expired entries first. False when it cannot fit even in an empty shard.
  bool insert(const CacheKey& key, std::span<const std::uint8_t> value, std::int64_t expiresAt,
              std::int64_t now) noexcept;
  // Drops `key`. False when absent.
  bool erase(const CacheKey& key) noexcept;

 private:
  struct Entry;
  struct Index;

  Entry* entryAt(std::uint64_t offset) const;
  std::uint64_t offsetOf(const Entry* entry) const;
  std::uint64_t& bucketOf(std::uint64_t hash) const;
  Entry* lookup(const CacheKey& key) const;
  void linkFront(Entry* entry);
  void unlinkLru(Entry* entry);
  void drop(Entry* entry);
  void sweepExpired(std::int64_t now);

  char* region_;
  std::uint64_t bytes_, indexBytes_, maxEntries_;
  mutable bool corrupt_ = false;
  ShardSegment segment_;
  Index* index_;
  std::uint32_t bucketMask_;
  ShardCounters& counters_;
};

}  // namespace molt::shm
