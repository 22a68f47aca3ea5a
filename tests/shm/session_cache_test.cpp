#include "shm/session_cache.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "tests/shm/shm_test_support.hpp"

using molt::shm::SessionCache;
using namespace std::chrono_literals;

namespace {

std::vector<std::uint8_t> bytes(const std::string& text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

std::vector<std::uint8_t> filled(std::size_t size, std::uint8_t value) {
  return std::vector<std::uint8_t>(size, value);
}

std::unique_ptr<SessionCache> makeCache(std::uint64_t size, std::uint32_t shards = 0) {
  std::string error;
  auto cache = SessionCache::create(size, error, shards);
  INFO(error);
  REQUIRE(cache);
  return cache;
}

const auto kT0 = SessionCache::Clock::time_point(100h);

}  // namespace

TEST_CASE("a stored session is found until its timeout, then dropped", "[shm][cache]") {
  auto cache = makeCache(1 << 20);
  REQUIRE(cache->store(bytes("id-1"), bytes("session one"), 10s, kT0));
  std::vector<std::uint8_t> out;
  REQUIRE(cache->lookup(bytes("id-1"), out, kT0 + 5s));
  CHECK(out == bytes("session one"));
  CHECK_FALSE(cache->lookup(bytes("id-2"), out, kT0 + 5s));
  CHECK_FALSE(cache->lookup(bytes("id-1"), out, kT0 + 11s));
  auto stats = cache->stats();
  CHECK(stats.hits == 1);
  CHECK(stats.misses == 2);
  CHECK(stats.stores == 1);
  CHECK(stats.expirations == 1);
  CHECK(stats.entries == 0);
  CHECK(stats.bytes == 0);
}

TEST_CASE("storing a key again replaces it and remove drops it", "[shm][cache]") {
  auto cache = makeCache(1 << 20);
  REQUIRE(cache->store(bytes("k"), bytes("old"), 60s));
  REQUIRE(cache->store(bytes("k"), bytes("new value"), 60s));
  std::vector<std::uint8_t> out;
  REQUIRE(cache->lookup(bytes("k"), out));
  CHECK(out == bytes("new value"));
  CHECK(cache->stats().entries == 1);
  CHECK(cache->remove(bytes("k")));
  CHECK_FALSE(cache->remove(bytes("k")));
  CHECK_FALSE(cache->lookup(bytes("k"), out));
  CHECK(cache->stats().entries == 0);
}

TEST_CASE("empty keys and oversized values are refused; long keys are hashed", "[shm][cache]") {
  auto cache = makeCache(1 << 20);
  CHECK_FALSE(cache->store(bytes(""), bytes("v"), 60s));
  CHECK_FALSE(cache->store(bytes("k"), filled(SessionCache::kMaxValueBytes + 1, 1), 60s));
  CHECK(cache->store(bytes("k"), filled(SessionCache::kMaxValueBytes, 1), 60s));
  std::string identity(200, 'x');
  REQUIRE(cache->store(bytes(identity), bytes("psk session"), 60s));
  std::vector<std::uint8_t> out;
  REQUIRE(cache->lookup(bytes(identity), out));
  CHECK(out == bytes("psk session"));
  CHECK_FALSE(cache->lookup(bytes(std::string(199, 'x') + "y"), out));
}

TEST_CASE("the least recently used entries are evicted, by bytes, to fit a new one",
          "[shm][cache]") {
  auto cache = makeCache(SessionCache::kMinZoneBytes, 1);
  std::vector<std::uint8_t> out;
  REQUIRE(cache->store(bytes("hot"), filled(200, 7), 1h, kT0));
  int stored = 0;
  while (cache->stats().evictions == 0) {
    REQUIRE(cache->store(bytes("cold-" + std::to_string(stored++)), filled(200, 1), 1h, kT0));
    REQUIRE(cache->lookup(bytes("hot"), out, kT0));  // keeps "hot" the most recently used
    REQUIRE(stored < 10000);
  }
  CHECK(stored > 100);
  CHECK_FALSE(cache->lookup(bytes("cold-0"), out, kT0));
  CHECK(cache->lookup(bytes("cold-" + std::to_string(stored - 1)), out, kT0));
  auto before = cache->stats();
  CHECK(before.bytes <= before.capacity);

  // One big entry pushes out as many small ones as its size needs.
  REQUIRE(cache->store(bytes("big"), filled(8000, 3), 1h, kT0));
  auto after = cache->stats();
  CHECK(after.evictions - before.evictions >= 8000 / 300);
  CHECK(cache->lookup(bytes("hot"), out, kT0));
  CHECK(cache->lookup(bytes("big"), out, kT0));
  CHECK(out == filled(8000, 3));
}

TEST_CASE("expired entries are swept by later stores without being looked up", "[shm][cache]") {
  auto cache = makeCache(SessionCache::kMinZoneBytes, 1);
  for (int i = 0; i < 100; ++i) {
    REQUIRE(cache->store(bytes("short-" + std::to_string(i)), filled(100, 1), 1s, kT0));
  }
  for (int i = 0; i < 10; ++i) {
    REQUIRE(cache->store(bytes("late-" + std::to_string(i)), filled(100, 1), 1h, kT0 + 2s));
  }
  auto stats = cache->stats();
  CHECK(stats.expirations == 80);  // a batch of 8 per store
  CHECK(stats.entries == 30);
  CHECK(stats.evictions == 0);
}

TEST_CASE("the shard count follows the zone size", "[shm][cache]") {
  CHECK(makeCache(SessionCache::kMinZoneBytes)->shardCount() == 1);
  CHECK(makeCache(8 << 20)->shardCount() == 8);
  CHECK(makeCache(64 << 20)->shardCount() == 64);
  CHECK(makeCache(1ull << 30)->shardCount() == 64);
  std::string error;
  CHECK_FALSE(SessionCache::create(64 * 1024, error));
  CHECK(error == "session cache of 65536 bytes: at least 131072 needed");
  CHECK_FALSE(SessionCache::create(1 << 20, error, 3));
  CHECK(error == "session cache: 3 shards is not a power of two up to 64");
  CHECK_FALSE(SessionCache::create(1 << 20, error, 64));
  CHECK(error == "session cache of 1048576 bytes: too small for 64 shards");
}

TEST_CASE("a fresh 1 GB session cache costs no resident memory", "[shm][cache][memory]") {
  auto cache = makeCache(1ull << 30);
  const char* base = cache->zone().data();
  CHECK(molt::shm::test::mappingName(base) == "/memfd:molt-session-cache (deleted)");
  std::int64_t fresh = molt::shm::test::residentBytes(base);
  INFO("fresh 1 GB zone: " << fresh << " bytes resident");
  CHECK(fresh >= 0);
  CHECK(fresh <= 64 * 1024);

  // Pages come as entries are written: 10k sessions of 200 bytes touch their own ~3 MB and the
  // bucket pages they land in (at most 1/128 of the cache, 8 MB here), not 1 GB.
  for (int i = 0; i < 10000; ++i) {
    REQUIRE(cache->store(bytes("session-" + std::to_string(i)), filled(200, 1), 1h));
  }
  std::int64_t used = molt::shm::test::residentBytes(base);
  INFO("after 10000 entries: " << used << " bytes resident");
  CHECK(used > fresh);
  CHECK(used < 16 * 1024 * 1024);
}

TEST_CASE("session cache throughput", "[.][bench]") {
  auto cache = makeCache(256 << 20);
  constexpr int kEntries = 200000;
  std::vector<std::vector<std::uint8_t>> keys;
  for (int i = 0; i < kEntries; ++i) keys.push_back(filled(32, 0));
  for (int i = 0; i < kEntries; ++i) std::memcpy(keys[i].data(), &i, sizeof i);
  auto value = filled(200, 9);
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& k : keys) cache->store(k, value, 1h);
  auto t1 = std::chrono::steady_clock::now();
  std::vector<std::uint8_t> out;
  int hits = 0;
  for (const auto& k : keys) hits += cache->lookup(k, out);
  auto t2 = std::chrono::steady_clock::now();
  auto rate = [](std::chrono::steady_clock::duration d) {
    return kEntries / std::chrono::duration<double>(d).count();
  };
  WARN("stores/s " << rate(t1 - t0) << ", lookups/s " << rate(t2 - t1) << ", hits " << hits
                   << ", resident " << molt::shm::test::residentBytes(cache->zone().data()));
  CHECK(hits == kEntries);
}

namespace {

// Points every bucket of shard 0 at a fake entry at `at` whose chain leads back to itself.
void plantCycle(SessionCache& cache, std::uint64_t at) {
  auto view = cache.shardRegion(0);
  auto* words = reinterpret_cast<std::uint64_t*>(view.region);
  for (std::uint64_t i = 8; i < view.indexBytes / 8; ++i) words[i] = at;  // bucket heads
  auto* entry = reinterpret_cast<std::uint64_t*>(view.region + at);
  entry[0] = 0x5ca1ab1e;  // hash: matches no key
  entry[1] = at;          // chain next: itself
  entry[2] = entry[3] = entry[4] = 0;
  entry[5] = 0;  // no value, no key
}

}  // namespace

TEST_CASE("a chain that loops is corruption: the shard is wiped, the call ends",
          "[shm][cache][trust]") {
  auto cache = makeCache(1 << 20, 1);
  REQUIRE(cache->store(bytes("before"), bytes("v"), 60s));
  auto view = cache->shardRegion(0);
  plantCycle(*cache, view.indexBytes + 8192);
  std::vector<std::uint8_t> out;
  // Before the fix this lookup spun forever under the shard's lock.
  REQUIRE_FALSE(cache->lookup(bytes("anything"), out));
  auto stats = cache->stats();
  REQUIRE(stats.wipes == 1);
  REQUIRE(stats.entries == 0);
  // The wiped shard works again.
  REQUIRE(cache->store(bytes("after"), bytes("w"), 60s));
  REQUIRE(cache->lookup(bytes("after"), out));
}

TEST_CASE("links that leave the region are corruption, not a crash", "[shm][cache][trust]") {
  auto cache = makeCache(1 << 20, 1);
  auto view = cache->shardRegion(0);
  REQUIRE(cache->store(bytes("k"), bytes("v"), 60s));
  auto* words = reinterpret_cast<std::uint64_t*>(view.region);
  for (std::uint64_t i = 0; i < view.indexBytes / 8; ++i) words[i] = (1ull << 40) + 8 * i;
  std::vector<std::uint8_t> out;
  REQUIRE_FALSE(cache->lookup(bytes("k"), out));
  REQUIRE(cache->stats().wipes == 1);
  // A misaligned link, and one into the index itself.
  REQUIRE(cache->store(bytes("k"), bytes("v"), 60s));
  words[0] = view.indexBytes + 3;  // LRU head
  words[1] = 16;                   // LRU tail, inside the index
  REQUIRE(cache->store(bytes("k2"), bytes("v2"), 60s) == false);
  REQUIRE(cache->stats().wipes == 2);
}

TEST_CASE("statistics read the layout this process made, not the zone's header",
          "[shm][cache][trust]") {
  auto cache = makeCache(1 << 20);
  std::uint32_t shards = cache->shardCount();
  REQUIRE(cache->store(bytes("k"), bytes("v"), 60s));
  // The header every process maps writable: a worker could write anything there. Before the fix
  // `molt ctl cache` looped to the header's shard count, far past the mapping.
  std::memset(cache->zone().data() + sizeof(molt::shm::ZoneHeader), 0xff, 64);
  auto stats = cache->stats();
  REQUIRE(stats.shards == shards);
  REQUIRE(stats.entries == 1);
  REQUIRE(cache->shardCount() == shards);
  std::vector<std::uint8_t> out;
  REQUIRE(cache->lookup(bytes("k"), out));
}
