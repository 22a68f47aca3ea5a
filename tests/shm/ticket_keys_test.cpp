#include "shm/ticket_keys.hpp"

#include <fcntl.h>
#include <sys/mman.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "tests/shm/shm_test_support.hpp"

using molt::common::UniqueFd;
using molt::shm::Access;
using molt::shm::TicketKeys;
using molt::shm::TicketKeySet;
using molt::shm::test::Child;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<TicketKeys> makeKeys(std::int64_t now = 1000) {
  std::string error;
  auto keys = TicketKeys::create(error, now);
  INFO(error);
  REQUIRE(keys);
  return keys;
}

std::unique_ptr<TicketKeys> attachCopy(TicketKeys& keys, Access access) {
  std::string error;
  auto copy =
      TicketKeys::attach(UniqueFd(::fcntl(keys.zone().fd(), F_DUPFD_CLOEXEC, 0)), access, error);
  INFO(error);
  REQUIRE(copy);
  return copy;
}

bool same(const molt::shm::TicketKey& a, const molt::shm::TicketKey& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

TEST_CASE("a new ticket-keys zone holds three distinct fresh keys", "[shm][tickets]") {
  auto keys = makeKeys();
  TicketKeySet set = keys->snapshot();
  CHECK(set.current.name != set.previous.name);
  CHECK(set.current.name != set.next.name);
  CHECK(set.current.aesKey != set.next.aesKey);
  CHECK(set.current.hmacKey != set.next.hmacKey);
  CHECK(set.current.created == 1000);
  CHECK(set.rotations == 0);
  CHECK(keys->zone().size() == TicketKeys::kZoneBytes);
}

TEST_CASE("rotation moves current to previous and next to current", "[shm][tickets]") {
  auto keys = makeKeys();
  TicketKeySet before = keys->snapshot();
  REQUIRE(keys->rotate(2000));
  TicketKeySet after = keys->snapshot();
  CHECK(same(after.previous, before.current));
  CHECK(same(after.current, before.next));
  CHECK(after.next.name != before.next.name);
  CHECK(after.next.created == 2000);
  CHECK(after.rotatedAt == 2000);
  CHECK(after.rotations == 1);
}

TEST_CASE("a worker's read-only view sees the master's rotations and cannot rotate",
          "[shm][tickets]") {
  auto keys = makeKeys();
  auto worker = attachCopy(*keys, Access::ReadOnly);
  REQUIRE(keys->rotate(2000));
  CHECK(same(worker->snapshot().current, keys->snapshot().current));
  CHECK_FALSE(worker->rotate(3000));
  CHECK(worker->snapshot().rotations == 1);
}

TEST_CASE("a master killed mid-rotation leaves readers an intact copy", "[shm][tickets]") {
  auto keys = makeKeys();
  REQUIRE(keys->rotate(2000));
  TicketKeySet published = keys->snapshot();
  auto reader = attachCopy(*keys, Access::ReadOnly);
  TicketKeys::Layout& layout = keys->layout();

  SECTION("killed while writing copy 0: readers keep the previous keys") {
    layout.sequence += 1;
    std::memset(layout.copies[0], 0xAB, sizeof layout.copies[0]);
    CHECK(same(reader->snapshot().current, published.current));
    // A new master (after exec) rotates from what readers saw.
    auto master = attachCopy(*keys, Access::ReadWrite);
    REQUIRE(master->rotate(3000));
    CHECK(same(reader->snapshot().previous, published.current));
    CHECK(reader->snapshot().rotations == 2);
  }
  SECTION("killed while writing copy 1: readers already have the new keys") {
    std::memset(layout.copies[1], 0xAB, sizeof layout.copies[1]);
    CHECK(same(reader->snapshot().current, published.current));
  }
}

TEST_CASE("readers never see a torn key set while the master rotates", "[shm][tickets][fork]") {
  auto keys = makeKeys(0);
  REQUIRE(keys->rotate(1));
  REQUIRE(keys->rotate(2));
  Child master([&] {
    auto writer = attachCopy(*keys, Access::ReadWrite);
    for (std::int64_t now = 3;; ++now) writer->rotate(now);
    return 0;
  });
  auto reader = attachCopy(*keys, Access::ReadOnly);
  std::uint64_t seen = 0;
  bool consistent = true;
  auto deadline = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < deadline && consistent) {
    TicketKeySet set = reader->snapshot();
    consistent = set.next.created == set.rotatedAt && set.current.created == set.rotatedAt - 1 &&
                 set.previous.created == set.rotatedAt - 2 &&
                 set.rotations == static_cast<std::uint64_t>(set.rotatedAt);
    seen = set.rotations;
  }
  CHECK(consistent);
  CHECK(seen > 2);
}

TEST_CASE("workers get the ticket keys through a descriptor that cannot be mapped writable",
          "[shm][tickets][trust]") {
  std::string error;
  auto keys = molt::shm::TicketKeys::create(error);
  REQUIRE(keys);
  molt::common::UniqueFd readOnly = keys->zone().readOnlyDescriptor();
  REQUIRE(readOnly);
  REQUIRE(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, readOnly.get(), 0) == MAP_FAILED);
  auto view =
      molt::shm::TicketKeys::attach(std::move(readOnly), molt::shm::Access::ReadOnly, error);
  REQUIRE(view);
  REQUIRE(view->snapshot().current.name == keys->snapshot().current.name);
  REQUIRE_FALSE(view->rotate());
}

TEST_CASE("a fleet's ticket ring round-trips, and a ring that does not check out is refused",
          "[shm][tickets][fleet][trust]") {
  std::string error;
  auto keys = molt::shm::TicketKeys::create(error, 1'700'000'000);
  REQUIRE(keys);
  molt::shm::TicketKeySet set = keys->snapshot();
  REQUIRE(molt::shm::rotateTicketKeys(set, 1'700'000'100));
  std::string bytes = molt::shm::encodeTicketRing(set);
  REQUIRE(bytes.size() == molt::shm::kTicketRingBytes);
  auto back = molt::shm::decodeTicketRing(bytes, 1'700'000'200, error);
  REQUIRE(back);
  CHECK(molt::shm::sameTicketKeys(*back, set));
  CHECK(back->rotations == 1);
  CHECK(back->rotatedAt == 1'700'000'100);
  REQUIRE(keys->replace(*back));
  CHECK(molt::shm::sameTicketKeys(keys->snapshot(), set));

  // What Redis might hold instead: other bytes, a truncated ring, a ring from the far future,
  // two slots with one key.
  CHECK_FALSE(molt::shm::decodeTicketRing("hello", 1'700'000'200, error));
  CHECK_THAT(error, Catch::Contains("5 bytes"));
  std::string magic = bytes;
  magic[0] = 'X';
  CHECK_FALSE(molt::shm::decodeTicketRing(magic, 1'700'000'200, error));
  CHECK_FALSE(molt::shm::decodeTicketRing(bytes.substr(1), 1'700'000'200, error));
  CHECK_FALSE(molt::shm::decodeTicketRing(bytes, 1'600'000'000, error));
  CHECK_THAT(error, Catch::Contains("out of range"));
  molt::shm::TicketKeySet twice = set;
  twice.next.name = twice.current.name;
  CHECK_FALSE(
      molt::shm::decodeTicketRing(molt::shm::encodeTicketRing(twice), 1'700'000'200, error));
  CHECK_THAT(error, Catch::Contains("share a name"));
}
