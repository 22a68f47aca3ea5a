#include "shm/zone.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "tests/shm/shm_test_support.hpp"

using molt::common::UniqueFd;
using molt::shm::Access;
using molt::shm::Zone;
using molt::shm::ZoneKind;

namespace {

UniqueFd dupOf(const Zone& zone) {
  return UniqueFd(::fcntl(zone.fd(), F_DUPFD_CLOEXEC, 0));
}

std::string openError(UniqueFd fd, ZoneKind kind, std::uint32_t version, std::uint64_t size) {
  std::string error;
  auto zone = Zone::open(std::move(fd), kind, version, size, Access::ReadWrite, error);
  CHECK_FALSE(zone.has_value());
  return error;
}

}  // namespace

TEST_CASE("a zone is a named memfd with a versioned header", "[shm][zone]") {
  std::string error;
  auto zone = Zone::create(ZoneKind::SessionCache, 3, 1 << 20, error);
  REQUIRE(zone);
  CHECK(std::memcmp(zone->header().magic, "MOLTZONE", 8) == 0);
  CHECK(zone->header().version == 3);
  CHECK(zone->header().kind == 1);
  CHECK(zone->header().size == (1 << 20));
  CHECK(zone->header().created > 0);
  CHECK(molt::shm::test::mappingName(zone->data()) == "/memfd:molt-session-cache (deleted)");
  // Sealed: nobody can resize it under the other processes' mappings.
  CHECK(::ftruncate(zone->fd(), 4096) != 0);
}

TEST_CASE("a zone opened from its fd sees the creator's bytes at another address", "[shm][zone]") {
  std::string error;
  auto created = Zone::create(ZoneKind::TicketKeys, 1, 8192, error);
  REQUIRE(created);
  auto opened = Zone::open(dupOf(*created), ZoneKind::TicketKeys, 1, 8192, Access::ReadOnly, error);
  REQUIRE(opened);
  CHECK(opened->data() != created->data());
  created->data()[100] = 42;
  CHECK(opened->data()[100] == 42);
}

TEST_CASE("opening a zone with the wrong magic, kind, version or size fails loudly",
          "[shm][zone]") {
  std::string error;
  auto zone = Zone::create(ZoneKind::SessionCache, 1, 1 << 20, error);
  REQUIRE(zone);
  CHECK(openError(dupOf(*zone), ZoneKind::TicketKeys, 1, 0) ==
        "ticket-keys zone: the memfd holds a session-cache zone (kind 1)");
  CHECK(openError(dupOf(*zone), ZoneKind::SessionCache, 2, 0) ==
        "session-cache zone: layout version 1, this binary knows 2");
  CHECK(openError(dupOf(*zone), ZoneKind::SessionCache, 1, 2 << 20) ==
        "session-cache zone: 1048576 bytes, expected 2097152");

  UniqueFd other(::memfd_create("not-a-zone", MFD_CLOEXEC));
  REQUIRE(::ftruncate(other.get(), 4096) == 0);
  CHECK(openError(std::move(other), ZoneKind::SessionCache, 1, 0) ==
        "session-cache zone: bad magic, not a molt zone");

  UniqueFd tiny(::memfd_create("tiny", MFD_CLOEXEC));
  CHECK(openError(std::move(tiny), ZoneKind::SessionCache, 1, 0) ==
        "session-cache zone: the memfd has 0 bytes, not even a zone header");
}

TEST_CASE("a zone whose header disagrees with its memfd's size is refused", "[shm][zone]") {
  std::string error;
  auto zone = Zone::create(ZoneKind::SessionCache, 1, 1 << 20, error);
  REQUIRE(zone);
  reinterpret_cast<molt::shm::ZoneHeader*>(zone->data())->size = 4 << 20;
  CHECK(openError(dupOf(*zone), ZoneKind::SessionCache, 1, 0) ==
        "session-cache zone: header says 4194304 bytes, the memfd has 1048576");
}

TEST_CASE("released zones unmap, and a punched hole frees pages for every process", "[shm][zone]") {
  std::string error;
  auto zone = Zone::create(ZoneKind::SessionCache, 1, 4 << 20, error);
  REQUIRE(zone);
  auto view = Zone::open(dupOf(*zone), ZoneKind::SessionCache, 1, 0, Access::ReadWrite, error);
  REQUIRE(view);
  std::memset(zone->data() + (1 << 20), 7, 2 << 20);
  // Only the header page (read by open) is faulted in through `view`.
  CHECK(molt::shm::test::residentBytes(view->data()) == 4096);
  CHECK(view->data()[(2 << 20)] == 7);
  REQUIRE(zone->punchHole(1 << 20, 2 << 20) == 0);
  CHECK(molt::shm::test::residentBytes(zone->data()) <= 8192);
  CHECK(view->data()[(2 << 20)] == 0);
  CHECK(zone->header().kind == 1);  // outside the hole: kept

  const char* address = view->data();
  view->release();
  CHECK_FALSE(view->mapped());
  CHECK(molt::shm::test::residentBytes(address) == -1);
}
