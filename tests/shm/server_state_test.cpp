#include "shm/server_state.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

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

common::UniqueFd dupOf(ServerState& state) {
  return common::UniqueFd(fcntl(state.zone().fd(), F_DUPFD_CLOEXEC, 0));
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
  auto fd = dupOf(*state);
  pid_t child = fork();
  if (child == 0) {
    std::string e;
    auto view = ServerState::attach(std::move(fd), e);
    bool ok = view && view->serverCount() == 12 && view->server(0).name == "a";
    if (view) view->live(0).connections.fetch_add(7);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(state->live(0).connections.load() == 7);
}

TEST_CASE(
    "a server costs under 56 bytes of zone (32 table, 8 live, its name), shared by every process",
    "[shm][servers][memory]") {
  auto config = twoBackends(100000);
  std::string error;
  auto state = ServerState::build(config, error);
  REQUIRE(state);
  // Memory the memfd holds (the spare room for runtime additions is address space only).
  struct stat st {};
  REQUIRE(fstat(state->zone().fd(), &st) == 0);
  double perServer = static_cast<double>(st.st_blocks) * 512.0 / 100002.0;
  INFO("bytes per server: " << perServer << ", zone size " << state->zone().size());
  REQUIRE(perServer < 56);
  REQUIRE(state->spareRows() >= 100002);
}

TEST_CASE("a zone of another kind is refused as a server table", "[shm][servers]") {
  std::string error;
  auto other = shm::Zone::create(shm::ZoneKind::TicketKeys, 1, 4096, error);
  REQUIRE(other);
  auto state = ServerState::attach(common::UniqueFd(fcntl(other->fd(), F_DUPFD_CLOEXEC, 0)), error);
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
