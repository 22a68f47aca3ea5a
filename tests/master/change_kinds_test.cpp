// Every registered change kind, applied to a serving generation as ChangeCoordinator applies it:
// what reaches the zone and what operations its workers get.
#include "master/change_kinds.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "common/runtime_change.hpp"
#include "master/journal.hpp"
#include "tests/support/memory_files.hpp"

using namespace molt::master;
namespace common = molt::common;
namespace control = molt::common::control;
using nlohmann::json;

namespace {

const molt::test::MemoryFiles kSideFiles{
    {{"/maps/hosts.map", "one.example.com 1\n"}, {"/certs/site.pem", "SITE PEM"}}, {}};

common::FileSource files() {
  return kSideFiles.source();
}

constexpr const char* kConfig = R"({
  "frontends": [{
    "name": "www",
    "bind": ["127.0.0.1:0", {"address": "127.0.0.1:0", "tls": true}],
    "certificates": ["/certs/site.pem"],
    "routes": [{"host_map": "/maps/hosts.map", "backend_prefix": "bk_"}],
    "default_backend": "bk_1"
  }],
  "backends": [
    {"name": "bk_1", "check": {"type": "tcp"}, "servers": [
      {"name": "web1", "address": "127.0.0.1:8001", "check": true},
      {"name": "web2", "address": "127.0.0.1:8002"}]},
    {"name": "bk_2"}
  ]
})";

// A generation as the builder leaves it: config, server-state zone (no workers).
std::unique_ptr<Generation> servingGeneration() {
  LoadedConfig loaded;
  loaded.config = std::make_unique<common::Config>(common::parseConfig(kConfig, "m.json", files()));
  auto g = std::make_unique<Generation>(1, std::move(loaded));
  std::string error;
  REQUIRE(g->buildServerState([](const std::string&, const std::string&) { return true; }, error));
  return g;
}

struct Applied {
  std::string refused;
  Publication out;
};

// What ChangeCoordinator::apply does, minus the journal and the workers.
Applied apply(Generation& g, json request) {
  const ChangeKind* kind = findChangeKind(request.at("cmd").get<std::string>());
  REQUIRE(kind);
  Applied a;
  if (kind->refuse && !(a.refused = kind->refuse(g, request)).empty()) return a;
  RemovedRows removed = kind->removes ? kind->removes(g.config(), request) : RemovedRows{};
  std::string error = common::applyRuntimeChange(g.mutableConfig(), request, files());
  INFO(error);
  REQUIRE(error.empty());
  kind->publish(g, request, removed, a.out);
  return a;
}

template <class Op>
const Op& only(const Publication& p) {
  REQUIRE(p.ops.size() == 1);
  REQUIRE(std::holds_alternative<Op>(p.ops[0]));
  return std::get<Op>(p.ops[0]);
}

}  // namespace

TEST_CASE("every API change command has one registered kind that publishes it",
          "[master][changes]") {
  std::set<std::string_view> seen;
  for (const ChangeKind& kind : changeKinds()) {
    INFO(kind.cmd);
    REQUIRE(kind.publish);
    REQUIRE(common::isRuntimeChange(kind.cmd));
    REQUIRE(seen.insert(kind.cmd).second);
    REQUIRE(findChangeKind(kind.cmd) == &kind);
  }
  REQUIRE(seen.size() == 9);
  REQUIRE(findChangeKind("server.explode") == nullptr);
}

TEST_CASE("server.add appends a zone row and sends workers the server", "[master][changes]") {
  auto g = servingGeneration();
  std::uint64_t rows = g->serverState()->serverCount();
  auto a =
      apply(*g, {{"cmd", "server.add"},
                 {"backend", "bk_1"},
                 {"server", {{"name", "web3"}, {"address", "127.0.0.1:8003"}, {"weight", 4}}}});
  const auto& put = only<control::ServerPut>(a.out);
  REQUIRE(put.backend == "bk_1");
  REQUIRE(put.server == "web3");
  REQUIRE(put.address == "127.0.0.1:8003");
  REQUIRE(put.weight == 4);
  REQUIRE(put.index == rows);
  REQUIRE(g->serverState()->serverCount() == rows + 1);
  REQUIRE(g->serverState()->serverName(rows) == "web3");
  REQUIRE(g->serverState()->weight(rows) == 4);
}

TEST_CASE("server.add and backend.add are refused when the zone has no room", "[master][changes]") {
  auto g = servingGeneration();
  std::uint64_t room = g->serverState()->spareRows();
  auto a = apply(
      *g,
      {{"cmd", "server.add"},
       {"backend", "bk_1"},
       {"server", {{"template", "t"}, {"from", 1}, {"to", room + 1}, {"address", "127.0.0.1:9"}}}});
  REQUIRE_THAT(a.refused, Catch::Matchers::Contains("room for " + std::to_string(room)));
  auto b = apply(
      *g, {{"cmd", "backend.add"},
           {"backend",
            {{"name", "bk_big"},
             {"servers",
              {{{"template", "t"}, {"from", 0}, {"to", room}, {"address", "127.0.0.1:9"}}}}}}});
  REQUIRE_FALSE(b.refused.empty());
}

TEST_CASE("a server.add whose names the zone cannot hold is refused before anything applies",
          "[master][changes]") {
  auto g = servingGeneration();
  std::uint64_t rows = g->serverState()->serverCount();
  std::uint64_t nameRoom = g->serverState()->spareNameBytes();
  // As many rows as there is room for, but long names: before the check, the config and the
  // journal took the servers and the zone did not (a later server.del then wrote past it).
  std::string longName(200, 'n');
  auto a = apply(*g, {{"cmd", "server.add"},
                      {"backend", "bk_1"},
                      {"server",
                       {{"template", longName},
                        {"from", 1},
                        {"to", nameRoom / 200 + 10},
                        {"address", "127.0.0.1:9"}}}});
  REQUIRE_THAT(a.refused, Catch::Matchers::Contains("more bytes of server names"));
  REQUIRE(g->serverState()->serverCount() == rows);
  REQUIRE(g->config().findBackend("bk_1")->servers.size() == 2);
}

TEST_CASE("server.set updates the zone's weight and admin state and resends the server",
          "[master][changes]") {
  auto g = servingGeneration();
  auto a = apply(*g, {{"cmd", "server.set"},
                      {"backend", "bk_1"},
                      {"server", "web2"},
                      {"weight", 9},
                      {"state", "drain"}});
  const auto& put = only<control::ServerPut>(a.out);
  REQUIRE(put.server == "web2");
  REQUIRE(put.weight == 9);
  REQUIRE(g->serverState()->weight(put.index) == 9);
  REQUIRE(g->serverState()->live(put.index).admin.load() ==
          static_cast<std::uint8_t>(common::ServerAdmin::Drain));
}

TEST_CASE("server.del waits for the server's connections, then retires its row",
          "[master][changes]") {
  auto g = servingGeneration();
  const ChangeKind& del = *findChangeKind("server.del");
  json request = {{"cmd", "server.del"}, {"backend", "bk_1"}, {"server", "web1"}};
  molt::shm::ServerLive& live = g->serverState()->live(0);
  g->serverState()->connections(0).store(2);
  REQUIRE(del.busy(*g, request) == 2);
  REQUIRE(live.admin.load() == static_cast<std::uint8_t>(common::ServerAdmin::Drain));
  g->serverState()->connections(0).store(0);
  REQUIRE(del.busy(*g, request) == 0);
  auto a = apply(*g, request);
  const auto& remove = only<control::ServerRemove>(a.out);
  REQUIRE(remove.server == "web1");
  REQUIRE(a.out.checksChanged);
  REQUIRE(live.admin.load() == static_cast<std::uint8_t>(common::ServerAdmin::Maint));
  REQUIRE_FALSE(g->setHealth("bk_1", "web1", false));  // no longer checked
}

TEST_CASE("backend.add gives its servers consecutive rows and sends the API's object",
          "[master][changes]") {
  auto g = servingGeneration();
  std::uint64_t first = g->serverState()->serverCount();
  json backend = {{"name", "bk_3"},
                  {"servers",
                   {{{"name", "x"}, {"address", "127.0.0.1:7001"}},
                    {{"name", "y"}, {"address", "127.0.0.1:7002"}}}}};
  auto a = apply(*g, {{"cmd", "backend.add"}, {"backend", backend}});
  const auto& add = only<control::BackendAdd>(a.out);
  REQUIRE(add.first == first);
  REQUIRE(add.backend == backend);
  REQUIRE(g->serverState()->serverCount() == first + 2);
  REQUIRE(g->serverState()->serverName(first + 1) == "y");
}

TEST_CASE("backend.del retires every row of the backend", "[master][changes]") {
  auto g = servingGeneration();
  auto a = apply(*g, {{"cmd", "backend.del"}, {"backend", "bk_2"}});
  REQUIRE(only<control::BackendDel>(a.out).backend == "bk_2");
  // bk_1 is the default backend: its deletion is refused by the config model, before any kind.
  json refused = {{"cmd", "backend.del"}, {"backend", "bk_1"}};
  REQUIRE_FALSE(common::applyRuntimeChange(g->mutableConfig(), refused, files()).empty());
}

TEST_CASE("map.set and map.del name the route and the backend as the worker's router holds them",
          "[master][changes]") {
  auto g = servingGeneration();
  auto a = apply(
      *g, {{"cmd", "map.set"}, {"frontend", "www"}, {"host", "Two.Example.com"}, {"value", "2"}});
  const auto& set = only<control::MapSet>(a.out);
  REQUIRE(set.frontend == "www");
  REQUIRE(set.route == 0);
  REQUIRE(set.host == "two.example.com");
  REQUIRE(set.backend == "bk_2");
  auto b = apply(*g, {{"cmd", "map.del"}, {"frontend", "www"}, {"host", "one.example.com"}});
  const auto& del = only<control::MapDel>(b.out);
  REQUIRE(del.host == "one.example.com");
  REQUIRE(del.route == 0);
}

TEST_CASE("cert.set and cert.del send the frontend, the name and the PEM", "[master][changes]") {
  auto g = servingGeneration();
  auto a =
      apply(*g, {{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "site2"}, {"pem", "PEM TEXT"}});
  const auto& set = only<control::CertSet>(a.out);
  REQUIRE(set.frontend == "www");
  REQUIRE(set.name == "site2");
  REQUIRE(set.pem == "PEM TEXT");
  auto b = apply(*g, {{"cmd", "cert.del"}, {"frontend", "www"}, {"name", "site2"}});
  REQUIRE(only<control::CertDel>(b.out).name == "site2");
}

TEST_CASE("journal folds: each kind drops what it supersedes", "[master][changes]") {
  Journal j;
  j.append({{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "a"}, {"pem", "1"}});
  j.append({{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "a"}, {"pem", "2"}});
  REQUIRE(j.size() == 1);
  REQUIRE(j.entries()[0]["pem"] == "2");
  j.append({{"cmd", "cert.del"}, {"frontend", "www"}, {"name", "a"}});
  REQUIRE(j.empty());
  j.append({{"cmd", "map.set"}, {"frontend", "www"}, {"host", "h"}, {"value", "1"}});
  j.append({{"cmd", "map.set"}, {"frontend", "www"}, {"host", "h"}, {"value", "2"}});
  REQUIRE(j.size() == 1);
  j.append({{"cmd", "map.del"}, {"frontend", "www"}, {"host", "h"}});
  REQUIRE(j.size() == 2);
  j.clear();
  j.append({{"cmd", "server.add"},
            {"backend", "bk_1"},
            {"server", {{"name", "s"}, {"address", "127.0.0.1:1"}}}});
  j.append({{"cmd", "server.set"}, {"backend", "bk_1"}, {"server", "s"}, {"weight", 2}});
  j.append({{"cmd", "server.del"}, {"backend", "bk_1"}, {"server", "s"}});
  REQUIRE(j.empty());
  j.append({{"cmd", "backend.add"}, {"backend", {{"name", "bk_9"}}}});
  j.append({{"cmd", "backend.del"}, {"backend", "bk_9"}});
  REQUIRE(j.empty());
}
