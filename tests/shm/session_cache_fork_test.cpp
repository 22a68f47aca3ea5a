// The session cache across processes: what workers sharing it (and dying) must be able to rely on.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "shm/session_cache.hpp"
#include "tests/shm/shm_test_support.hpp"

using molt::common::UniqueFd;
using molt::shm::SessionCache;
using molt::shm::test::Child;
using molt::shm::test::Signal;
using namespace std::chrono_literals;

namespace {

std::vector<std::uint8_t> bytes(const std::string& text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

std::string key(int i) {
  return "session-id-" + std::to_string(i);
}

// What a worker does with the fd it received: its own mapping, at its own address.
std::unique_ptr<SessionCache> attachCopy(SessionCache& cache) {
  std::string error;
  return SessionCache::attach(UniqueFd(::fcntl(cache.zone().fd(), F_DUPFD_CLOEXEC, 0)),
                              cache.zone().size(), error);
}

std::unique_ptr<SessionCache> makeCache(std::uint64_t size) {
  std::string error;
  auto cache = SessionCache::create(size, error);
  INFO(error);
  REQUIRE(cache);
  return cache;
}

}  // namespace

TEST_CASE("two processes see each other's entries", "[shm][cache][fork]") {
  auto cache = makeCache(4 << 20);
  REQUIRE(cache->store(bytes("from-parent"), bytes("p"), 1h));
  Signal childStored;
  Child child([&] {
    auto mine = attachCopy(*cache);
    if (!mine) return 2;
    std::vector<std::uint8_t> out;
    if (!mine->lookup(bytes("from-parent"), out) || out != bytes("p")) return 3;
    if (!mine->store(bytes("from-child"), bytes("c"), 1h)) return 4;
    childStored.post();
    return 0;
  });
  REQUIRE(childStored.await());
  REQUIRE(child.wait() == 0);
  std::vector<std::uint8_t> out;
  REQUIRE(cache->lookup(bytes("from-child"), out));
  CHECK(out == bytes("c"));
  CHECK(cache->stats().hits == 2);
}

TEST_CASE("a process SIGKILLed holding a shard lock costs that shard and nothing else",
          "[shm][cache][fork]") {
  auto cache = makeCache(16 << 20);
  REQUIRE(cache->shardCount() == 16);
  for (int i = 0; i < 1000; ++i) REQUIRE(cache->store(bytes(key(i)), bytes(key(i)), 1h));
  std::uint32_t victim = cache->shardOf(bytes(key(0)));
  int inVictim = 0;
  for (int i = 0; i < 1000; ++i) inVictim += cache->shardOf(bytes(key(i))) == victim;

  Child child([&] {
    auto mine = attachCopy(*cache);
    mine->shardMutex(victim).lock(1s);
    ::raise(SIGKILL);
    return 0;
  });
  REQUIRE(WIFSIGNALED(child.wait()));

  std::vector<std::uint8_t> out;
  auto started = std::chrono::steady_clock::now();
  CHECK_FALSE(cache->lookup(bytes(key(0)), out));  // the next locker wipes the shard
  CHECK(std::chrono::steady_clock::now() - started < 1s);
  int found = 0;
  for (int i = 0; i < 1000; ++i) found += cache->lookup(bytes(key(i)), out);
  CHECK(found == 1000 - inVictim);
  auto stats = cache->stats();
  CHECK(stats.lockRecoveries == 1);
  CHECK(stats.lockFailures == 0);
  CHECK(stats.entries == static_cast<std::uint64_t>(1000 - inVictim));
  REQUIRE(cache->store(bytes(key(0)), bytes("again"), 1h));  // the rebuilt shard works
  REQUIRE(cache->lookup(bytes(key(0)), out));
  CHECK(out == bytes("again"));
}

TEST_CASE("writers killed at any point of a store leave a working cache", "[shm][cache][fork]") {
  auto cache = makeCache(4 << 20);
  for (int round = 0; round < 20; ++round) {
    Signal busy;
    Child child([&] {
      auto mine = attachCopy(*cache);
      for (int i = 0;; ++i) {
        mine->store(bytes(key(round * 1000000 + i)), std::vector<std::uint8_t>(150 + i % 500, 1),
                    1h);
        if (i == 2000) busy.post();
      }
      return 0;
    });
    REQUIRE(busy.await());
    ::kill(child.pid(), SIGKILL);
    REQUIRE(WIFSIGNALED(child.wait()));
  }
  // Every shard answers, and stores and lookups work in all of them.
  std::vector<std::uint8_t> out;
  for (int i = 0; i < 2000; ++i)
    REQUIRE(cache->store(bytes("after-" + std::to_string(i)), bytes("x"), 1h));
  for (int i = 0; i < 2000; ++i) REQUIRE(cache->lookup(bytes("after-" + std::to_string(i)), out));
  auto stats = cache->stats();
  INFO("lock recoveries after 20 kills mid-storm: " << stats.lockRecoveries);
  CHECK(stats.lockFailures == 0);
  CHECK(stats.lockRecoveries <= 20);
  CHECK(stats.bytes <= stats.capacity);
}
