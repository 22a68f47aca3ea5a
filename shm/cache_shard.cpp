#include "shm/cache_shard.hpp"

#include <cstddef>
#include <cstring>
#include <new>

namespace molt::shm {

namespace bip = boost::interprocess;

// Links are offsets from the region's start (0: none), so every process may map the zone at a
// different address.
struct CacheShard::Entry {
  std::uint64_t hash;
  std::uint64_t chainNext;
  std::uint64_t lruPrev, lruNext;  // towards the most / least recently used
  std::int64_t expiresAt;
  std::uint32_t valueBytes;
  std::uint8_t keyBytes;
  std::uint8_t key[CacheKey::kMaxBytes];
  // the value follows

  std::uint8_t* value() { return reinterpret_cast<std::uint8_t*>(this + 1); }
  std::uint64_t charge() const { return sizeof(Entry) + valueBytes; }
};

struct CacheShard::Index {
  std::uint64_t lruHead, lruTail;  // most / least recently used
  std::uint64_t reserved[6];
  std::uint64_t buckets[1];  // chain heads; the array runs on to the end of the index
};

namespace {

constexpr int kSweepBatch = 8;
constexpr std::uint64_t kPage = 4096;

}  // namespace

std::uint64_t CacheShard::indexBytes(std::uint32_t buckets) {
  std::uint64_t bytes = offsetof(Index, buckets) + std::uint64_t{buckets} * sizeof(std::uint64_t);
  return (bytes + kPage - 1) / kPage * kPage;
}

// The index is not allocated from the managed buffer: zero pages are an empty index, so a
// bucket page is faulted in only when an entry is linked into it.
bool CacheShard::build(char* region, std::uint64_t bytes, std::uint32_t buckets) noexcept {
  std::uint64_t index = indexBytes(buckets);
  if (bytes <= index) return false;
  try {
    ShardSegment segment(bip::create_only, region + index, bytes - index);
    return true;
  } catch (...) {
    return false;
  }
}

CacheShard::CacheShard(char* region, std::uint64_t bytes, std::uint32_t buckets,
                       ShardCounters& counters)
    : region_(region),
      bytes_(bytes),
      indexBytes_(indexBytes(buckets)),
      maxEntries_((bytes - indexBytes(buckets)) / sizeof(Entry)),
      segment_(bip::open_only, region + indexBytes(buckets), bytes - indexBytes(buckets)),
      index_(reinterpret_cast<Index*>(region)),
      bucketMask_(buckets - 1),
      counters_(counters) {}

// Every link read from the region is checked before it is followed: another process may have
// written anything there. A link that does not check out marks the shard corrupt (the caller
// wipes it) and reads as the end of the list.
CacheShard::Entry* CacheShard::entryAt(std::uint64_t offset) const {
  if (offset == 0) return nullptr;
  if (offset < indexBytes_ || offset % alignof(Entry) != 0 || offset > bytes_ - sizeof(Entry)) {
    corrupt_ = true;
    return nullptr;
  }
  auto* e = reinterpret_cast<Entry*>(region_ + offset);
  // Expiry times are milliseconds of CLOCK_MONOTONIC after a store: never zero or negative.
  if (e->keyBytes > CacheKey::kMaxBytes || e->valueBytes > kMaxValueBytes ||
      e->valueBytes > bytes_ - offset - sizeof(Entry) || e->expiresAt <= 0) {
    corrupt_ = true;
    return nullptr;
  }
  return e;
}

std::uint64_t CacheShard::offsetOf(const Entry* entry) const {
  return static_cast<std::uint64_t>(reinterpret_cast<const char*>(entry) - region_);
}

std::uint64_t& CacheShard::bucketOf(std::uint64_t hash) const {
  return index_->buckets[hash & bucketMask_];
}

// Chains are walked at most as far as the shard could hold entries: a cycle is corruption.
CacheShard::Entry* CacheShard::lookup(const CacheKey& key) const {
  std::uint64_t steps = 0;
  for (Entry* e = entryAt(bucketOf(key.hash)); e != nullptr; e = entryAt(e->chainNext)) {
    if (++steps > maxEntries_) {
      corrupt_ = true;
      return nullptr;
    }
    if (e->hash == key.hash && e->keyBytes == key.size &&
        std::memcmp(e->key, key.bytes, key.size) == 0) {
      return e;
    }
  }
  return nullptr;
}

void CacheShard::linkFront(Entry* entry) {
  std::uint64_t offset = offsetOf(entry);
  entry->lruPrev = 0;
  entry->lruNext = index_->lruHead;
  if (Entry* head = entryAt(index_->lruHead)) head->lruPrev = offset;
  index_->lruHead = offset;
  if (index_->lruTail == 0) index_->lruTail = offset;
}

void CacheShard::unlinkLru(Entry* entry) {
  if (Entry* prev = entryAt(entry->lruPrev)) {
    prev->lruNext = entry->lruNext;
  } else {
    index_->lruHead = entry->lruNext;
  }
  if (Entry* next = entryAt(entry->lruNext)) {
    next->lruPrev = entry->lruPrev;
  } else {
    index_->lruTail = entry->lruPrev;
  }
}

void CacheShard::drop(Entry* entry) {
  if (entry == nullptr || corrupt_) return;
  std::uint64_t offset = offsetOf(entry);
  std::uint64_t* link = &bucketOf(entry->hash);
  for (std::uint64_t steps = 0; *link != offset; ++steps) {
    Entry* e = entryAt(*link);
    if (e == nullptr || steps > maxEntries_) {
      corrupt_ = true;  // the entry is not on its own chain
      return;
    }
    link = &e->chainNext;
  }
  *link = entry->chainNext;
  unlinkLru(entry);
  if (corrupt_) return;
  counters_.entries.fetch_sub(1, std::memory_order_relaxed);
  counters_.bytes.fetch_sub(entry->charge(), std::memory_order_relaxed);
  segment_.deallocate(entry);
}

// Lazy expiry: the least recently used end is where expired entries gather, and looking at a
// few of them per store keeps the shard clean without a timer in any process.
void CacheShard::sweepExpired(std::int64_t now) {
  for (int i = 0; i < kSweepBatch && !corrupt_; ++i) {
    Entry* tail = entryAt(index_->lruTail);
    if (tail == nullptr || tail->expiresAt > now) return;
    drop(tail);
    counters_.expirations.fetch_add(1, std::memory_order_relaxed);
  }
}

bool CacheShard::find(const CacheKey& key, std::int64_t now,
                      std::vector<std::uint8_t>& out) noexcept {
  Entry* entry = lookup(key);
  if (corrupt_) return false;
  if (entry != nullptr && entry->expiresAt <= now) {
    drop(entry);
    counters_.expirations.fetch_add(1, std::memory_order_relaxed);
    entry = nullptr;
  }
  if (entry == nullptr) {
    counters_.misses.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  try {
    out.assign(entry->value(), entry->value() + entry->valueBytes);
  } catch (...) {
    return false;
  }
  unlinkLru(entry);
  linkFront(entry);
  counters_.hits.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool CacheShard::insert(const CacheKey& key, std::span<const std::uint8_t> value,
                        std::int64_t expiresAt, std::int64_t now) noexcept {
  if (Entry* old = lookup(key)) drop(old);
  sweepExpired(now);
  if (corrupt_ || value.size() > kMaxValueBytes) return false;
  std::size_t charge = sizeof(Entry) + value.size();
  void* memory = segment_.allocate(charge, std::nothrow);
  while (memory == nullptr && index_->lruTail != 0) {
    Entry* tail = entryAt(index_->lruTail);
    if (tail == nullptr) return false;  // corrupt: wiped by the caller
    drop(tail);
    if (corrupt_) return false;
    counters_.evictions.fetch_add(1, std::memory_order_relaxed);
    memory = segment_.allocate(charge, std::nothrow);
  }
  if (memory == nullptr) return false;
  auto* entry = static_cast<Entry*>(memory);
  entry->hash = key.hash;
  entry->expiresAt = expiresAt;
  entry->valueBytes = static_cast<std::uint32_t>(value.size());
  entry->keyBytes = key.size;
  std::memcpy(entry->key, key.bytes, key.size);
  std::memcpy(entry->value(), value.data(), value.size());
  std::uint64_t& bucket = bucketOf(key.hash);
  entry->chainNext = bucket;
  bucket = offsetOf(entry);
  linkFront(entry);
  counters_.entries.fetch_add(1, std::memory_order_relaxed);
  counters_.bytes.fetch_add(charge, std::memory_order_relaxed);
  counters_.stores.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool CacheShard::erase(const CacheKey& key) noexcept {
  Entry* entry = lookup(key);
  if (entry == nullptr) return false;
  drop(entry);
  return !corrupt_;
}

}  // namespace molt::shm
