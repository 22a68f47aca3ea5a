#include "worker/backend.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <string>

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
  for (int i = 0; i < 10; ++i) REQUIRE(backend.server(backend.pick()).name == "c");
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
  REQUIRE(backend.server(0).name == "a");
  REQUIRE(backend.server(0).declared == 0);
}
