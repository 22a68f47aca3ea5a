#include "shm/server_state.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>

using namespace molt;
using shm::ServerState;

namespace {

common::Config twoBackends(unsigned templateServers) {
  std::string text = R"({"frontends": [], "backends": [
    {"name": "web", "servers": [{"name": "a", "address": "127.0.0.1:8001", "weight": 3},
                                {"name": "b", "address": "[::1]:8002", "disabled": true}]},
    {"name": "api", "check": {"type": "tcp"}, "servers": [
      {"template": "spare", "from": 1, "to": )" +
                     std::to_string(templateServers) +
                     R"(, "address": "10.0.0.1:9000", "disabled": true}]}]})";
  return common::parseConfig(text, "test.json");
}

common::UniqueFd dupOf(int fd) {
  return common::UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

}  // namespace

TEST_CASE("the server table holds every server's name, address, weight and flags",
          "[shm][servers]") {
  auto config = twoBackends(100);
  std::string error;
  auto state = ServerState::build(config, error);
  REQUIRE(state);
  REQUIRE(state->backendCount() == 2);
  REQUIRE(state->serverCount() == 102);
  REQUIRE(state->backend(0).name == "web");
  REQUIRE(state->backend(1).name == "api");
  REQUIRE(state->backend(1).first == 2);
  REQUIRE(state->backend(1).count == 100);
  auto a = state->server(0);
  REQUIRE(a.name == "a");
  REQUIRE(a.address.text() == "127.0.0.1:8001");
  REQUIRE(a.weight == 3);
  REQUIRE_FALSE(a.disabled);
  REQUIRE(state->server(1).address.text() == "[::1]:8002");
  REQUIRE(state->server(1).disabled);
  REQUIRE(state->server(101).name == "spare100");
  REQUIRE(state->server(101).checked);
  REQUIRE(state->findBackend("api") == 1);
  REQUIRE(state->findBackend("nope") == -1);
}

TEST_CASE("eligibility follows health, admin state and weight", "[shm][servers]") {
  auto config = twoBackends(1);
  std::string error;
  auto state = ServerState::build(config, error);
  REQUIRE(state->eligible(0));
  REQUIRE_FALSE(state->eligible(1));  // configured disabled: starts in maintenance
  state->live(1).admin = static_cast<std::uint8_t>(shm::ServerAdmin::Ready);
  REQUIRE(state->eligible(1));
  state->live(0).health = static_cast<std::uint8_t>(shm::ServerHealth::Down);
  REQUIRE_FALSE(state->eligible(0));
  state->live(0).health = 0;
  state->live(0).weightPlusOne = 1;  // weight 0: no new traffic
  REQUIRE(state->weight(0) == 0);
  REQUIRE_FALSE(state->eligible(0));
  state->live(0).weightPlusOne = 0;
  REQUIRE(state->weight(0) == 3);
}

TEST_CASE("a new zone starts each server in the admin state its config gives", "[shm][servers]") {
  auto config = twoBackends(2);
  config.backends[0].servers[0].admin = common::ServerAdmin::Drain;  // as a server.set leaves it
  config.backends[0].servers[1].admin = common::ServerAdmin::Ready;  // disabled made ready
  config.backends[0].servers[1].disabled = false;
  std::string error;
  auto state = ServerState::build(config, error);
  REQUIRE(state);
  REQUIRE(state->live(0).admin.load() == static_cast<std::uint8_t>(shm::ServerAdmin::Drain));
  REQUIRE_FALSE(state->eligible(0));
  REQUIRE(state->live(1).admin.load() == static_cast<std::uint8_t>(shm::ServerAdmin::Ready));
  REQUIRE(state->eligible(1));
  REQUIRE(state->live(2).admin.load() == static_cast<std::uint8_t>(shm::ServerAdmin::Maint));
}

TEST_CASE("a worker process attached to the zone sees the table and shares live state",
          "[shm][servers]") {
  auto config = twoBackends(10);
  std::string error;
  auto state = ServerState::build(config, error);
  auto table = state->tableForWorker();
  auto load = state->loadForWorker();
  pid_t child = fork();
  if (child == 0) {
    std::string e;
    auto view = ServerState::attach(std::move(table), std::move(load), shm::Access::ReadOnly, e);
    bool ok = view && view->serverCount() == 12 && view->server(0).name == "a";
    if (view) view->connections(0).fetch_add(7);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(state->connections(0).load() == 7);
}

TEST_CASE(
    "a server costs under 56 bytes of zones (32 table, 4 live, 4 load, its name), shared by every "
    "process",
    "[shm][servers][memory]") {
  auto config = twoBackends(100000);
  std::string error;
  auto state = ServerState::build(config, error);
  REQUIRE(state);
  // Memory the memfd holds (the spare room for runtime additions is address space only).
  struct stat st {};
  REQUIRE(fstat(state->zone().fd(), &st) == 0);
  struct stat load {};
  REQUIRE(fstat(state->loadZone().fd(), &load) == 0);
  double perServer = static_cast<double>(st.st_blocks + load.st_blocks) * 512.0 / 100002.0;
  INFO("bytes per server: " << perServer << ", zone size " << state->zone().size());
  REQUIRE(perServer < 56);
  REQUIRE(state->spareRows() >= 100002);
}

TEST_CASE("a zone of another kind is refused as a server table", "[shm][servers]") {
  std::string error;
  auto other = shm::Zone::create(shm::ZoneKind::TicketKeys, 1, 4096, error);
  REQUIRE(other);
  auto state =
      ServerState::attach(dupOf(other->fd()), dupOf(other->fd()), shm::Access::ReadOnly, error);
  REQUIRE_FALSE(state);
  REQUIRE(error.find("server-state zone") != std::string::npos);
}

TEST_CASE("servers added at runtime get rows past the file's, until the room is used up",
          "[shm][servers]") {
  auto config = twoBackends(10);
  std::string error;
  auto state = ServerState::build(config, error);
  REQUIRE(state);
  const std::uint64_t fileServers = state->serverCount();
  const std::uint64_t spare = state->spareRows();
  REQUIRE(spare >= 65536);
  std::string why;
  auto address = common::parseAddress("127.0.0.1:8080", common::AddressUse::Connect, why);
  auto row = state->appendServer("added", *address, 3, false, molt::shm::ServerAdmin::Drain, error);
  REQUIRE(row);
  REQUIRE(*row == fileServers);
  REQUIRE(state->serverName(*row) == "added");
  REQUIRE(state->server(*row).address == *address);
  REQUIRE(state->weight(*row) == 3);
  REQUIRE(state->live(*row).admin.load() ==
          static_cast<std::uint8_t>(molt::shm::ServerAdmin::Drain));
  REQUIRE_FALSE(state->eligible(*row));
  for (std::uint64_t i = 1; i < spare; ++i)
    REQUIRE(state->appendServer("s" + std::to_string(i), *address, 1, false,
                                molt::shm::ServerAdmin::Ready, error));
  REQUIRE(state->spareRows() == 0);
  REQUIRE_FALSE(state->appendServer("one-too-many", *address, 1, false,
                                    molt::shm::ServerAdmin::Ready, error));
  REQUIRE(error.find("a reload makes room") != std::string::npos);
  REQUIRE(state->serverName(fileServers + spare - 1) == "s" + std::to_string(spare - 1));
}

TEST_CASE("a worker's descriptor of the server table maps read-only and cannot be made writable",
          "[shm][servers][trust]") {
  auto config = twoBackends(10);
  std::string error;
  auto state = ServerState::build(config, error);
  REQUIRE(state);
  auto table = state->tableForWorker();
  REQUIRE(table);
  REQUIRE((fcntl(table.get(), F_GETFL) & O_ACCMODE) == O_RDONLY);
  // A writable shared mapping is refused, and a read-only one cannot be upgraded.
  REQUIRE(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, table.get(), 0) == MAP_FAILED);
  void* view = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, table.get(), 0);
  REQUIRE(view != MAP_FAILED);
  REQUIRE(mprotect(view, 4096, PROT_READ | PROT_WRITE) != 0);
  munmap(view, 4096);
  // Nor can it be resized or written through.
  REQUIRE(ftruncate(table.get(), 0) != 0);
  REQUIRE(pwrite(table.get(), "x", 1, 0) != 1);
  // The load zone, which workers write, is a zone of its own.
  auto load = state->loadForWorker();
  auto attached =
      ServerState::attach(std::move(table), std::move(load), shm::Access::ReadOnly, error);
  REQUIRE(attached);
  attached->connections(3).fetch_add(1);
  REQUIRE(state->connections(3).load() == 1);
}

TEST_CASE("the master's rows and layout are its own: a zone header rewritten later changes nothing",
          "[shm][servers][trust]") {
  auto config = twoBackends(10);
  std::string error;
  auto state = ServerState::build(config, error);
  REQUIRE(state);
  std::uint64_t rows = state->serverCount(), room = state->spareRows();
  // Scribble over the whole table header, as a process with a writable mapping could.
  std::memset(state->zone().data() + sizeof(shm::ZoneHeader), 0xff, 80);
  REQUIRE(state->serverCount() == rows);
  REQUIRE(state->spareRows() == room);
  auto address = common::parseAddress("127.0.0.1:1", common::AddressUse::Connect, error);
  auto row = state->appendServer("next", *address, 1, false, shm::ServerAdmin::Ready, error);
  REQUIRE(row);
  REQUIRE(*row == rows);
  REQUIRE(state->serverName(*row) == "next");
  // A worker attaching such a zone refuses it.
  auto bad = ServerState::attach(state->tableForWorker(), state->loadForWorker(),
                                 shm::Access::ReadOnly, error);
  REQUIRE_FALSE(bad);
  REQUIRE(error.find("server-state zone") != std::string::npos);
}

TEST_CASE("a worker reads an index past the table as no server", "[shm][servers][trust]") {
  auto config = twoBackends(1);
  std::string error;
  auto state = ServerState::build(config, error);
  REQUIRE(state);
  REQUIRE(state->server(state->capacity()).name.empty());
  REQUIRE(state->serverName(~std::uint64_t{0}).empty());
  REQUIRE_FALSE(state->eligible(state->capacity() + 5));
}
