#include "shm/session_cache.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "common/log.hpp"
#include "shm/cache_shard.hpp"

namespace molt::shm {

// Layout: see the protocol description in shm/zone.hpp.
struct SessionCache::ShardControl {
  RobustMutex mutex;
  std::atomic<std::uint32_t> built;
  std::uint32_t reserved;
  std::atomic<std::uint64_t> wipes;  // shards wiped because they did not check out
  ShardCounters counters;
};

namespace {

constexpr std::uint64_t kHeaderOffset = sizeof(ZoneHeader);
constexpr std::uint64_t kControlOffset = kHeaderOffset + 64;
constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kTargetShardBytes = 1 << 20;
constexpr std::uint64_t kBytesPerBucket = 1024;

std::uint64_t roundUp(std::uint64_t n, std::uint64_t to) {
  return (n + to - 1) / to * to;
}

// Lays out a zone of `bytes`: the shard count, shard size and first shard offset, or why not.
std::string plan(std::uint64_t bytes, std::uint32_t shards, std::uint32_t controlBytes,
                 std::uint32_t& outShards, std::uint64_t& shardBytes, std::uint64_t& offset) {
  if (bytes < SessionCache::kMinZoneBytes) {
    return fmt::format("session cache of {} bytes: at least {} needed", bytes,
                       SessionCache::kMinZoneBytes);
  }
  if (shards == 0) {
    std::uint64_t wanted = std::bit_floor(std::max<std::uint64_t>(bytes / kTargetShardBytes, 1));
    shards = static_cast<std::uint32_t>(std::min<std::uint64_t>(wanted, SessionCache::kMaxShards));
  }
  if (!std::has_single_bit(shards) || shards > SessionCache::kMaxShards) {
    return fmt::format("session cache: {} shards is not a power of two up to {}", shards,
                       SessionCache::kMaxShards);
  }
  offset = roundUp(kControlOffset + std::uint64_t{shards} * controlBytes, kPage);
  shardBytes = offset < bytes ? (bytes - offset) / shards / kPage * kPage : 0;
  if (shardBytes < SessionCache::kMinShardBytes) {
    return fmt::format("session cache of {} bytes: too small for {} shards", bytes, shards);
  }
  outShards = shards;
  return "";
}

std::uint32_t bucketsFor(std::uint64_t shardBytes) {
  return static_cast<std::uint32_t>(
      std::bit_ceil(std::max<std::uint64_t>(shardBytes / kBytesPerBucket, 16)));
}

// Keys longer than a TLS session id (ticket or PSK identities) are stored as their SHA-256.
bool makeKey(std::span<const std::uint8_t> bytes, CacheKey& key) {
  if (bytes.empty()) return false;
  if (bytes.size() > CacheKey::kMaxBytes) {
    unsigned int size = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), key.bytes, &size, EVP_sha256(), nullptr) != 1) {
      return false;
    }
    key.size = static_cast<std::uint8_t>(size);
  } else {
    std::memcpy(key.bytes, bytes.data(), bytes.size());
    key.size = static_cast<std::uint8_t>(bytes.size());
  }
  // FNV-1a then murmur3's finaliser: stable across processes and binaries (std::hash promises
  // neither), and the high bits that pick the shard depend on every byte of the key.
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (std::uint8_t i = 0; i < key.size; ++i) hash = (hash ^ key.bytes[i]) * 0x100000001b3ull;
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdull;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ull;
  hash ^= hash >> 33;
  key.hash = hash;
  return true;
}

std::uint32_t shardIndex(std::uint64_t hash, std::uint32_t shards) {
  return static_cast<std::uint32_t>(hash >> 32) & (shards - 1);
}

std::int64_t millis(SessionCache::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

// One shard's lock held for one operation. The holder that finds the lock's owner dead wipes
// the shard before anything else: the dead process may have been halfway through relinking.
class SessionCache::Locked {
 public:
  Locked(SessionCache& cache, std::uint32_t shard) noexcept
      : cache_(cache),
        shard_(shard),
        control_(cache.control(shard)),
        lock_(control_.mutex, kLockTimeout) {
    if (!lock_.owns()) {
      control_.counters.lockFailures.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (lock_.ownerDied()) {
      cache_.wipe(shard_, "its lock holder died");
      lock_.markConsistent();
      control_.counters.lockRecoveries.fetch_add(1, std::memory_order_relaxed);
    }
  }
  bool owns() const { return lock_.owns(); }
  // The shard, built first if `build`; nullptr when it holds nothing (or cannot be built).
  CacheShard* shard(bool build) noexcept {
    const Header& h = cache_.layout_;
    if (control_.built.load(std::memory_order_relaxed) == 0) {
      if (!build || !CacheShard::build(cache_.region(shard_), h.shardBytes, h.buckets)) {
        return nullptr;
      }
      control_.built.store(1, std::memory_order_relaxed);
    }
    try {
      return &view_.emplace(cache_.region(shard_), h.shardBytes, h.buckets, control_.counters);
    } catch (...) {
      // The allocator's own header does not read back: another process scribbled on it.
      wipeCorrupt();
      return nullptr;
    }
  }
  // After an operation: a shard whose links did not check out is wiped (it is a cache).
  void wipeIfCorrupt() noexcept {
    if (view_ && view_->corrupt()) wipeCorrupt();
  }
  void wipeCorrupt() noexcept {
    view_.reset();
    cache_.wipe(shard_, "its index or entries were corrupt");
    control_.wipes.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  SessionCache& cache_;
  std::uint32_t shard_;
  ShardControl& control_;
  RobustLock lock_;
  std::optional<CacheShard> view_;
};

SessionCache::SessionCache(Zone zone, Header layout) : zone_(std::move(zone)), layout_(layout) {
  static_assert(sizeof(Header) == 64 && sizeof(ShardControl) == 128, "layout version 1");
}
SessionCache::~SessionCache() = default;

std::unique_ptr<SessionCache> SessionCache::create(std::uint64_t bytes, std::string& error,
                                                   std::uint32_t shards) {
  std::uint64_t shardBytes = 0, offset = 0;
  error = plan(bytes, shards, sizeof(ShardControl), shards, shardBytes, offset);
  if (!error.empty()) return nullptr;
  std::optional<Zone> zone = Zone::create(ZoneKind::SessionCache, kLayoutVersion, bytes, error);
  if (!zone) return nullptr;
  Header layout{shards, bucketsFor(shardBytes), shardBytes, offset, {}};
  std::unique_ptr<SessionCache> cache(new SessionCache(std::move(*zone), layout));
  cache->header() = layout;
  for (std::uint32_t i = 0; i < shards; ++i) {
    if (int err = RobustMutex::initialize(&cache->control(i).mutex); err != 0) {
      error = fmt::format("pthread_mutex_init(session cache shard {}): {}", i, std::strerror(err));
      return nullptr;
    }
  }
  return cache;
}

std::unique_ptr<SessionCache> SessionCache::attach(common::UniqueFd fd, std::uint64_t bytes,
                                                   std::string& error) {
  std::optional<Zone> zone = Zone::open(std::move(fd), ZoneKind::SessionCache, kLayoutVersion,
                                        bytes, Access::ReadWrite, error);
  if (!zone) return nullptr;
  Header h;
  std::memcpy(&h, zone->data() + kHeaderOffset, sizeof h);  // read once: layout_ is ours
  std::uint32_t shards = 0;
  std::uint64_t shardBytes = 0, offset = 0;
  std::string why = plan(zone->size(), h.shards, sizeof(ShardControl), shards, shardBytes, offset);
  if (!why.empty() || h.shardBytes != shardBytes || h.shardsOffset != offset ||
      h.buckets != bucketsFor(shardBytes)) {
    error = fmt::format("session-cache zone: corrupt header ({} shards of {} bytes at {})",
                        h.shards, h.shardBytes, h.shardsOffset);
    return nullptr;
  }
  Header layout{shards, bucketsFor(shardBytes), shardBytes, offset, {}};
  return std::unique_ptr<SessionCache>(new SessionCache(std::move(*zone), layout));
}

SessionCache::Header& SessionCache::header() const {
  return *reinterpret_cast<Header*>(zone_.data() + kHeaderOffset);
}

SessionCache::ShardControl& SessionCache::control(std::uint32_t shard) const {
  return reinterpret_cast<ShardControl*>(zone_.data() + kControlOffset)[shard];
}

char* SessionCache::region(std::uint32_t shard) const {
  const Header& h = layout_;
  return zone_.data() + h.shardsOffset + std::uint64_t{shard} * h.shardBytes;
}

void SessionCache::wipe(std::uint32_t shard, const char* why) noexcept {
  ShardControl& c = control(shard);
  c.built.store(0, std::memory_order_relaxed);
  c.counters.entries.store(0, std::memory_order_relaxed);
  c.counters.bytes.store(0, std::memory_order_relaxed);
  // The hole punch gives the shard's pages back and leaves the zero index the next build
  // expects; should it fail, the index is zeroed by hand (the allocator is rebuilt anyway).
  const Header& h = layout_;
  if (zone_.punchHole(h.shardsOffset + std::uint64_t{shard} * h.shardBytes, h.shardBytes) != 0) {
    std::memset(region(shard), 0, CacheShard::indexBytes(h.buckets));
  }
  try {
    common::log::warn("session cache shard {}: {}; shard wiped", shard, why);
  } catch (...) {
  }
}

bool SessionCache::store(std::span<const std::uint8_t> key, std::span<const std::uint8_t> value,
                         std::chrono::seconds ttl, Clock::time_point now) noexcept {
  CacheKey k;
  if (value.empty() || value.size() > kMaxValueBytes || !makeKey(key, k)) return false;
  Locked locked(*this, shardIndex(k.hash, layout_.shards));
  if (!locked.owns()) return false;
  CacheShard* shard = locked.shard(true);
  bool stored = shard != nullptr && shard->insert(k, value, millis(now + ttl), millis(now));
  bool corrupt = shard != nullptr && shard->corrupt();
  locked.wipeIfCorrupt();
  return stored && !corrupt;
}

bool SessionCache::lookup(std::span<const std::uint8_t> key, std::vector<std::uint8_t>& value,
                          Clock::time_point now) noexcept {
  CacheKey k;
  if (!makeKey(key, k)) return false;
  std::uint32_t s = shardIndex(k.hash, layout_.shards);
  Locked locked(*this, s);
  CacheShard* shard = locked.owns() ? locked.shard(false) : nullptr;
  if (shard == nullptr) {
    control(s).counters.misses.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  bool found = shard->find(k, millis(now), value);
  if (shard->corrupt()) {
    locked.wipeIfCorrupt();
    return false;
  }
  return found;
}

bool SessionCache::remove(std::span<const std::uint8_t> key) noexcept {
  CacheKey k;
  if (!makeKey(key, k)) return false;
  Locked locked(*this, shardIndex(k.hash, layout_.shards));
  CacheShard* shard = locked.owns() ? locked.shard(false) : nullptr;
  bool erased = shard != nullptr && shard->erase(k);
  locked.wipeIfCorrupt();
  return erased;
}

SessionCacheStats SessionCache::stats() const noexcept {
  SessionCacheStats s;
  const Header& h = layout_;  // never the zone's: workers write it
  s.shards = h.shards;
  s.capacity = std::uint64_t{h.shards} * h.shardBytes;
  constexpr auto kRelaxed = std::memory_order_relaxed;
  for (std::uint32_t i = 0; i < h.shards; ++i) {
    const ShardCounters& c = control(i).counters;
    s.entries += c.entries.load(kRelaxed);
    s.bytes += c.bytes.load(kRelaxed);
    s.hits += c.hits.load(kRelaxed);
    s.misses += c.misses.load(kRelaxed);
    s.stores += c.stores.load(kRelaxed);
    s.evictions += c.evictions.load(kRelaxed);
    s.expirations += c.expirations.load(kRelaxed);
    s.lockRecoveries += c.lockRecoveries.load(kRelaxed);
    s.lockFailures += c.lockFailures.load(kRelaxed);
    s.wipes += control(i).wipes.load(kRelaxed);
  }
  return s;
}

std::uint32_t SessionCache::shardCount() const {
  return layout_.shards;
}

std::uint32_t SessionCache::shardOf(std::span<const std::uint8_t> key) const {
  CacheKey k;
  return makeKey(key, k) ? shardIndex(k.hash, layout_.shards) : 0;
}

SessionCache::RegionView SessionCache::shardRegion(std::uint32_t shard) const {
  return {region(shard), layout_.shardBytes, CacheShard::indexBytes(layout_.buckets)};
}

RobustMutex& SessionCache::shardMutex(std::uint32_t shard) {
  return control(shard).mutex;
}

}  // namespace molt::shm
