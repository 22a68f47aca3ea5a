#include "common/runtime_change.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <sstream>

#include "tests/common/runtime_change_test_support.hpp"

using namespace molt::common;
using namespace molt::test::runtime;
using nlohmann::json;

TEST_CASE("server.add adds a server read as the config file reads one", "[runtime_change]") {
  Config c = testConfig();
  REQUIRE(apply(c, {{"cmd", "server.add"},
                    {"backend", "bk_1"},
                    {"server",
                     {{"name", "web3"}, {"address", "127.0.0.1:8003"}, {"weight", 7}}}}) == "");
  const ServerConfig* s = findServer(c, "bk_1", "web3");
  REQUIRE(s);
  CHECK(s->address.text() == "127.0.0.1:8003");
  CHECK(s->weight == 7);
  CHECK(s->admin == ServerAdmin::Ready);
  CHECK(s->check);  // the backend's check applies, as for a server in the file
  CHECK(c.findBackend("bk_1")->checkOf(*s)->path == "/health");

  REQUIRE(apply(c, {{"cmd", "server.add"},
                    {"backend", "bk_2"},
                    {"server",
                     {{"name", "b"},
                      {"address", "127.0.0.1:9002"},
                      {"disabled", true},
                      {"check", {{"type", "http"}, {"path", "/up"}}}}}}) == "");
  const ServerConfig* b = findServer(c, "bk_2", "b");
  REQUIRE(b);
  CHECK(b->admin == ServerAdmin::Maint);
  CHECK(b->disabled);
  CHECK(c.findBackend("bk_2")->checkOf(*b)->path == "/up");
}

TEST_CASE("server.add of a template adds its whole range", "[runtime_change]") {
  Config c = testConfig();
  REQUIRE(apply(c, {{"cmd", "server.add"},
                    {"backend", "bk_2"},
                    {"server",
                     {{"template", "spare"},
                      {"from", 1},
                      {"to", 3},
                      {"address", "127.0.0.1:9100"},
                      {"disabled", true}}}}) == "");
  CHECK(serverNames(c, "bk_2") == std::vector<std::string>{"a", "spare1", "spare2", "spare3"});
  CHECK(findServer(c, "bk_2", "spare2")->admin == ServerAdmin::Maint);

  // A range reaching a name the backend has is refused whole.
  std::string before = snapshot(c);
  CHECK(apply(c, {{"cmd", "server.add"},
                  {"backend", "bk_2"},
                  {"server",
                   {{"template", "spare"}, {"from", 3}, {"to", 5}, {"address", "127.0.0.1:1"}}}}) ==
        "server: bk_2 already has a server named 'spare3' (the template makes spare3 to spare5)");
  CHECK(snapshot(c) == before);
}

TEST_CASE("server.add is refused with the field at fault", "[runtime_change]") {
  Config c = testConfig();
  std::string before = snapshot(c);
  auto add = [&](json backend, json server) {
    json change = {{"cmd", "server.add"}, {"backend", backend}};
    if (!server.is_null()) change["server"] = server;
    return apply(c, change);
  };
  json web = {{"name", "web9"}, {"address", "127.0.0.1:8009"}};
  CHECK(add("bk_x", web) == "backend: no backend named 'bk_x' (did you mean 'bk_1'?)");
  CHECK(add(3, web) == "backend: expected a string");
  CHECK(add("bk_1", nullptr) == "server: missing (server.add needs it)");
  CHECK(add("bk_1", "web9") == "server: expected an object");
  CHECK(add("bk_1", {{"name", "web1"}, {"address", "127.0.0.1:1"}}) ==
        "server: bk_1 already has a server named 'web1'");
  CHECK(add("bk_deny", web) ==
        "backend: bk_deny answers by itself (deny 403): it takes no servers");
  CHECK(add("bk_1", {{"name", "web9"}, {"address", "127.0.0.1:70000"}}) ==
        "server.address: port out of range");
  CHECK(add("bk_1", {{"name", "web9"}}) == "server: missing required key 'address'");
  CHECK(add("bk_1", {{"name", "web9"}, {"address", "127.0.0.1:1"}, {"wieght", 2}}) ==
        "server.wieght: unknown key 'wieght' (did you mean 'weight'?)");
  CHECK(add("bk_1", {{"name", "web 9"}, {"address", "127.0.0.1:1"}, {"weight", 300}}) ==
        "server.name: bad name 'web 9': use letters, digits, '_', '.', '-'; "
        "server.weight: must be between 0 and 256");
  CHECK(apply(c, {{"cmd", "server.add"}, {"backend", "bk_1"}, {"server", web}, {"force", true}}) ==
        "force: unknown key for server.add");
  CHECK(snapshot(c) == before);
}

TEST_CASE("server.del removes a server, and only one that exists", "[runtime_change]") {
  Config c = testConfig();
  REQUIRE(apply(c, {{"cmd", "server.del"}, {"backend", "bk_1"}, {"server", "web1"}}) == "");
  CHECK(serverNames(c, "bk_1") == std::vector<std::string>{"web2"});
  std::string before = snapshot(c);
  CHECK(apply(c, {{"cmd", "server.del"}, {"backend", "bk_1"}, {"server", "web1"}}) ==
        "server: bk_1 has no server named 'web1'");
  CHECK(apply(c, {{"cmd", "server.del"}, {"backend", "bk_1"}}) ==
        "server: missing (server.del needs it)");
  CHECK(
      apply(c,
            {{"cmd", "server.del"}, {"backend", "bk_1"}, {"server", "web2"}, {"timeout_ms", -1}}) ==
      "timeout_ms: must be at least 0");
  CHECK(snapshot(c) == before);

  // The drain timeout is the master's business: accepted, and not kept for the journal.
  json change = {
      {"cmd", "server.del"}, {"backend", "bk_1"}, {"server", "web2"}, {"timeout_ms", 500}};
  REQUIRE(applyRuntimeChange(c, change, kFiles) == "");
  CHECK(change == json{{"cmd", "server.del"}, {"backend", "bk_1"}, {"server", "web2"}});
}

TEST_CASE("server.set changes address, weight and admin state", "[runtime_change]") {
  Config c = testConfig();
  REQUIRE(apply(c, {{"cmd", "server.set"},
                    {"backend", "bk_1"},
                    {"server", "web1"},
                    {"address", "[::1]:8101"},
                    {"weight", 0},
                    {"state", "drain"}}) == "");
  const ServerConfig* s = findServer(c, "bk_1", "web1");
  CHECK(s->address.text() == "[::1]:8101");
  CHECK(s->weight == 0);
  CHECK(s->admin == ServerAdmin::Drain);
  CHECK_FALSE(s->disabled);

  // maint is what "disabled" starts a server in; ready undoes it.
  REQUIRE(
      apply(c,
            {{"cmd", "server.set"}, {"backend", "bk_1"}, {"server", "web1"}, {"state", "maint"}}) ==
      "");
  CHECK(s->admin == ServerAdmin::Maint);
  CHECK(s->disabled);
  REQUIRE(
      apply(c,
            {{"cmd", "server.set"}, {"backend", "bk_1"}, {"server", "web2"}, {"state", "ready"}}) ==
      "");
  const ServerConfig* web2 = findServer(c, "bk_1", "web2");
  CHECK(web2->admin == ServerAdmin::Ready);
  CHECK_FALSE(web2->disabled);
  CHECK(web2->weight == 5);  // untouched fields keep their value
}

TEST_CASE("server.set is refused with the field at fault", "[runtime_change]") {
  Config c = testConfig();
  std::string before = snapshot(c);
  auto set = [&](json fields) {
    json change = {{"cmd", "server.set"}, {"backend", "bk_1"}, {"server", "web1"}};
    change.update(fields);
    return apply(c, change);
  };
  CHECK(set({{"weight", 257}}) == "weight: must be between 0 and 256");
  CHECK(set({{"weight", -1}}) == "weight: must be between 0 and 256");
  CHECK(set({{"weight", "5"}}) == "weight: expected an integer");
  CHECK(set({{"weight", 2.5}}) == "weight: expected an integer");
  CHECK(set({{"state", "maintenance"}}) ==
        "state: expected one of \"ready\", \"drain\", \"maint\"");
  CHECK(set({{"state", "drian"}}) ==
        "state: expected one of \"ready\", \"drain\", \"maint\" (did you mean 'drain'?)");
  CHECK(set({{"address", "127.0.0.1"}}) == "address: missing port");
  CHECK(set({{"address", 80}}) == "address: expected a string");
  CHECK(set(json::object()) == "server.set needs at least one of address, weight, state");
  CHECK(set({{"wieght", 2}}) == "wieght: unknown key for server.set (did you mean 'weight'?)");
  // A valid field does not apply when another is refused.
  CHECK(set({{"weight", 9}, {"state", "bogus"}}).rfind("state: ", 0) == 0);
  CHECK(apply(c, {{"cmd", "server.set"}, {"backend", "bk_1"}, {"server", "web7"}, {"weight", 1}}) ==
        "server: bk_1 has no server named 'web7'");
  CHECK(snapshot(c) == before);
}

TEST_CASE("backend.add adds a backend read as the config file reads one", "[runtime_change]") {
  Config c = testConfig();
  json backend = {{"name", "bk_new"},
                  {"balance", "leastconn"},
                  {"check", {{"type", "tcp"}, {"interval", "5s"}}},
                  {"timeouts", {{"connect", "1s"}}},
                  {"retries", 1},
                  {"servers",
                   {{{"name", "n1"}, {"address", "127.0.0.1:7001"}},
                    {{"template", "t"}, {"from", 1}, {"to", 2}, {"address", "127.0.0.1:7002"}}}}};
  REQUIRE(apply(c, {{"cmd", "backend.add"}, {"backend", backend}}) == "");
  const BackendConfig* b = c.findBackend("bk_new");
  REQUIRE(b);
  CHECK(b->balance == Balance::LeastConn);
  CHECK(b->check->interval == std::chrono::seconds(5));
  CHECK(b->timeouts.connect == std::chrono::seconds(1));
  CHECK(b->retries == 1);
  CHECK(serverNames(c, "bk_new") == std::vector<std::string>{"n1", "t1", "t2"});
  REQUIRE(apply(c, {{"cmd", "backend.add"}, {"backend", {{"name", "bk_no"}, {"deny", 404}}}}) ==
          "");
  CHECK(c.findBackend("bk_no")->deny == 404);
}

TEST_CASE("backend.add is refused with the field at fault", "[runtime_change]") {
  Config c = testConfig();
  std::string before = snapshot(c);
  auto add = [&](json backend) { return apply(c, {{"cmd", "backend.add"}, {"backend", backend}}); };
  CHECK(add({{"name", "bk_1"}}) == "backend.name: a backend named 'bk_1' already exists");
  CHECK(add({{"balance", "roundrobin"}}) == "backend: missing required key 'name'");
  CHECK(add("bk_9") == "backend: expected an object");
  CHECK(add({{"name", "bk_9"},
             {"servers",
              {{{"name", "x"}, {"address", "127.0.0.1:1"}},
               {{"name", "x"}, {"address", "127.0.0.1:bad"}}}}}) ==
        "backend.servers[1].address: bad port 'bad'; "
        "backend.servers[1].name: duplicate server name 'x' (first at backend.servers[0])");
  CHECK(add({{"name", "bk_9"},
             {"deny", 403},
             {"servers", {{{"name", "x"}, {"address", "127.0.0.1:1"}}}}}) ==
        "backend.servers: a backend with 'deny' must have no servers");
  CHECK(snapshot(c) == before);
}

TEST_CASE("backend.del removes a backend no frontend uses, and names the use otherwise",
          "[runtime_change]") {
  Config c = testConfig();
  REQUIRE(apply(c, {{"cmd", "backend.del"}, {"backend", "bk_free"}}) == "");
  CHECK_FALSE(c.findBackend("bk_free"));
  std::string before = snapshot(c);
  auto del = [&](std::string name) {
    return apply(c, {{"cmd", "backend.del"}, {"backend", name}});
  };
  CHECK(del("bk_default") == "backend: bk_default is in use by frontends[0].default_backend");
  CHECK(del("bk_static") == "backend: bk_static is in use by frontends[0].routes[0].backend");
  CHECK(del("bk_app") == "backend: bk_app is in use by frontends[0].routes[1].backend");
  CHECK(del("bk_1") ==
        "backend: bk_1 is in use by frontends[0].routes[2].host_map (host 'one.example.com')");
  CHECK(del("bk_free") == "backend: no backend named 'bk_free'");
  CHECK(snapshot(c) == before);
  // Once the map entry is gone, the backend may go.
  REQUIRE(apply(c, {{"cmd", "map.del"}, {"frontend", "www"}, {"host", "one.example.com"}}) == "");
  CHECK(del("bk_1") == "");
}

TEST_CASE("a change that is not one is refused", "[runtime_change]") {
  Config c = testConfig();
  std::string before = snapshot(c);
  CHECK(apply(c, {{"cmd", "server.ad"}}) ==
        "cmd: unknown change 'server.ad' (did you mean 'server.add'?)");
  CHECK(apply(c, {{"backend", "bk_1"}}) == "cmd: missing, or not a string");
  CHECK(apply(c, json::array()) == "expected an object");
  CHECK(isRuntimeChange("map.del"));
  CHECK_FALSE(isRuntimeChange("proc"));
  CHECK(snapshot(c) == before);
}

TEST_CASE("a change is described by its command and the names it acts on", "[runtime_change]") {
  CHECK(describeRuntimeChange({{"cmd", "server.add"},
                               {"backend", "bk_1"},
                               {"server", {{"name", "web3"}, {"address", "x"}}}}) ==
        "server.add bk_1 web3");
  CHECK(describeRuntimeChange({{"cmd", "server.add"},
                               {"backend", "bk_1"},
                               {"server", {{"template", "t"}, {"from", 1}, {"to", 9}}}}) ==
        "server.add bk_1 t[1-9]");
  CHECK(describeRuntimeChange({{"cmd", "backend.add"}, {"backend", {{"name", "bk_9"}}}}) ==
        "backend.add bk_9");
  CHECK(describeRuntimeChange(
            {{"cmd", "map.set"}, {"frontend", "www"}, {"host", "a.com"}, {"value", "1"}}) ==
        "map.set www a.com");
  CHECK(describeRuntimeChange(
            {{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "shop"}, {"pem", "..."}}) ==
        "cert.set www shop");
}
