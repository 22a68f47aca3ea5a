#include "worker/backend.hpp"

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include "shm/server_state.hpp"

using molt::common::BackendConfig;
using molt::common::ServerConfig;
using molt::worker::Backend;

namespace {

BackendConfig backendWith(std::initializer_list<std::pair<std::string, unsigned>> servers) {
  BackendConfig config;
  config.name = "be";
  for (const auto& [name, weight] : servers) {
    ServerConfig s;
    s.name = name;
    s.weight = weight;
    config.servers.push_back(s);
  }
  return config;
}

}  // namespace

TEST_CASE("round robin gives each server picks in proportion to its weight", "[worker][balance]") {
  BackendConfig config = backendWith({{"a", 5}, {"b", 1}, {"c", 1}});
  Backend backend(config);
  std::map<int, int> picks;
  for (int i = 0; i < 7000; ++i) ++picks[backend.pick()];
  REQUIRE(picks[0] == 5000);
  REQUIRE(picks[1] == 1000);
  REQUIRE(picks[2] == 1000);
}

TEST_CASE("smooth round robin interleaves a heavy server instead of bursting it",
          "[worker][balance]") {
  BackendConfig config = backendWith({{"a", 5}, {"b", 1}, {"c", 1}});
  Backend backend(config);
  std::string order;
  for (int i = 0; i < 7; ++i) order += static_cast<char>('a' + backend.pick());
  // nginx's smooth weighting yields a a b a c a a for weights 5,1,1
  REQUIRE(order == "aabacaa");
}

TEST_CASE("round robin skips disabled and zero-weight servers", "[worker][balance]") {
  BackendConfig config = backendWith({{"a", 1}, {"b", 0}, {"c", 1}});
  config.servers[0].disabled = true;
  Backend backend(config);
  for (int i = 0; i < 10; ++i) REQUIRE(backend.serverName(backend.pick()) == "c");
}

TEST_CASE("round robin excludes servers a connection already tried", "[worker][balance]") {
  BackendConfig config = backendWith({{"a", 1}, {"b", 1}, {"c", 1}});
  Backend backend(config);
  int first = backend.pick();
  int tried[] = {first};
  int second = backend.pick(tried);
  REQUIRE(second != first);
  int both[] = {first, second};
  int third = backend.pick(both);
  REQUIRE(third != first);
  REQUIRE(third != second);
  int all[] = {0, 1, 2};
  REQUIRE(backend.pick(all) == -1);
}

TEST_CASE("a backend without eligible servers picks none", "[worker][balance]") {
  BackendConfig config = backendWith({});
  Backend backend(config);
  REQUIRE(backend.pick() == -1);
}

TEST_CASE("a worker keeps no copy of servers configured disabled", "[worker][balance][memory]") {
  BackendConfig config = backendWith({{"a", 1}, {"spare1", 1}, {"spare2", 1}});
  config.servers[1].disabled = true;
  config.servers[2].disabled = true;
  Backend backend(config);
  REQUIRE(backend.declared() == 3);
  REQUIRE(backend.size() == 1);
  REQUIRE(backend.serverName(0) == "a");
  REQUIRE(backend.server(0).declared == 0);
}

namespace {

molt::common::SocketAddress clientAt(unsigned n) {
  std::string error;
  return *molt::common::parseAddress(
      fmt::format("10.{}.{}.{}:4321", (n >> 16) & 255, (n >> 8) & 255, n & 255),
      molt::common::AddressUse::Connect, error);
}

}  // namespace

TEST_CASE("leastconn picks the server with the fewest connections per weight",
          "[worker][balance]") {
  BackendConfig config = backendWith({{"a", 1}, {"b", 1}, {"c", 2}});
  config.balance = molt::common::Balance::LeastConn;
  Backend backend(config);
  std::map<int, int> open;
  for (int i = 0; i < 40; ++i) {
    int index = backend.pick();
    backend.connectionOpened(index);
    ++open[index];
  }
  REQUIRE(open[0] == 10);
  REQUIRE(open[1] == 10);
  REQUIRE(open[2] == 20);  // twice the weight, twice the connections
  for (int i = 0; i < 10; ++i) backend.connectionClosed(0);
  REQUIRE(backend.pick() == 0);
}

TEST_CASE("leastconn counts connections from every worker through the server-state zone",
          "[worker][balance]") {
  auto config = molt::common::parseConfig(R"({"frontends": [], "backends": [{"name": "be",
      "balance": "leastconn", "servers": [{"name": "a", "address": "127.0.0.1:1"},
                                          {"name": "b", "address": "127.0.0.1:2"}]}]})",
                                          "test.json");
  std::string error;
  auto state = molt::shm::ServerState::build(config, error);
  REQUIRE(state);
  Backend backend(config.backends[0]);
  backend.attachState(state.get(), 0);
  state->connections(0) = 5;  // another worker holds five connections to a
  for (int i = 0; i < 5; ++i) {
    int index = backend.pick();
    REQUIRE(index == 1);
    backend.connectionOpened(index);
  }
  REQUIRE(state->connections(1).load() == 5);
}

TEST_CASE("source hashing keeps a client on its server and spreads clients evenly",
          "[worker][balance]") {
  BackendConfig config = backendWith({{"a", 1}, {"b", 1}, {"c", 1}});
  config.balance = molt::common::Balance::Source;
  Backend backend(config);
  auto client = clientAt(7);
  int first = backend.pick({}, &client);
  for (int i = 0; i < 100; ++i) REQUIRE(backend.pick({}, &client) == first);
  std::map<int, int> count;
  constexpr int kClients = 30000;
  for (unsigned n = 0; n < kClients; ++n) {
    auto c = clientAt(n);
    ++count[backend.pick({}, &c)];
  }
  for (int i = 0; i < 3; ++i) {
    INFO("server " << i << " got " << count[i]);
    REQUIRE(std::abs(count[i] - kClients / 3) < kClients / 30);  // within 10% of a third
  }
}

TEST_CASE("removing one of N servers remaps only its clients under source hashing",
          "[worker][balance]") {
  BackendConfig four = backendWith({{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}});
  four.balance = molt::common::Balance::Source;
  BackendConfig three = backendWith({{"a", 1}, {"b", 1}, {"c", 1}});
  three.balance = molt::common::Balance::Source;
  Backend before(four), after(three);
  constexpr int kClients = 20000;
  int moved = 0;
  for (unsigned n = 0; n < kClients; ++n) {
    auto c = clientAt(n);
    std::string was(before.serverName(before.pick({}, &c)));
    std::string now(after.serverName(after.pick({}, &c)));
    if (was != now) {
      ++moved;
      REQUIRE(was == "d");  // only the removed server's clients move
    }
  }
  INFO("moved " << moved << " of " << kClients);
  REQUIRE(moved <= kClients / 4 + kClients / 50);  // about 1/N, never more
}

TEST_CASE("random with two choices spreads evenly and avoids the loaded server",
          "[worker][balance]") {
  BackendConfig config = backendWith({{"a", 1}, {"b", 1}, {"c", 1}});
  config.balance = molt::common::Balance::Random;
  Backend backend(config);
  std::map<int, int> count;
  constexpr int kPicks = 30000;
  for (int i = 0; i < kPicks; ++i) ++count[backend.pick()];
  for (int i = 0; i < 3; ++i) REQUIRE(std::abs(count[i] - kPicks / 3) < kPicks / 30);
  for (int i = 0; i < 50; ++i) backend.connectionOpened(0);
  count.clear();
  for (int i = 0; i < kPicks; ++i) ++count[backend.pick()];
  // a wins only when both choices are a: 1/9 of the picks
  REQUIRE(count[0] < kPicks / 6);
}
