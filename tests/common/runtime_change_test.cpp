#include "common/runtime_change.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <sstream>

using namespace molt::common;
using nlohmann::json;

namespace {

// Side files served from memory.
FileSource memoryFiles(std::map<std::string, std::string> files) {
  FileSource s;
  s.read = [files](const std::string& path, std::string& error) -> std::optional<std::string> {
    auto it = files.find(path);
    if (it != files.end()) return it->second;
    error = "No such file or directory";
    return std::nullopt;
  };
  s.list = [](const std::string&, std::string& error) -> std::optional<std::vector<std::string>> {
    error = "Not a directory";
    return std::nullopt;
  };
  return s;
}

const FileSource kFiles = memoryFiles({
    {"/certs/site.pem", "SITE PEM"},
    {"/certs/new.pem", "NEW PEM"},
    {"/maps/hosts.map", "one.example.com 1\ntwo.example.com 2\n"},
});

constexpr const char* kConfig = R"({
  "frontends": [{
    "name": "www",
    "bind": ["127.0.0.1:0", {"address": "127.0.0.1:0", "tls": true}],
    "certificates": ["/certs/site.pem"],
    "routes": [
      {"path_prefix": "/static/", "backend": "bk_static"},
      {"host": "app.example.com", "backend": "bk_app"},
      {"host_map": "/maps/hosts.map", "backend_prefix": "bk_"}
    ],
    "default_backend": "bk_default"
  }, {
    "name": "plain", "bind": ["127.0.0.1:0"], "default_backend": "bk_default"
  }],
  "backends": [
    {"name": "bk_1", "check": {"type": "http", "path": "/health"}, "servers": [
      {"name": "web1", "address": "127.0.0.1:8001"},
      {"name": "web2", "address": "127.0.0.1:8002", "weight": 5, "disabled": true}]},
    {"name": "bk_2", "servers": [{"name": "a", "address": "127.0.0.1:9001"}]},
    {"name": "bk_app"}, {"name": "bk_static"}, {"name": "bk_default"}, {"name": "bk_free"},
    {"name": "bk_deny", "deny": 403}
  ]
})";

Config testConfig() {
  return parseConfig(kConfig, "molt.json", kFiles);
}

std::string apply(Config& config, json change) {
  return applyRuntimeChange(config, change, kFiles);
}

const ServerConfig* findServer(const Config& config, std::string_view backend,
                               std::string_view name) {
  const BackendConfig* b = config.findBackend(backend);
  if (!b) return nullptr;
  for (const ServerConfig& s : b->servers)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> serverNames(const Config& config, std::string_view backend) {
  std::vector<std::string> names;
  for (const ServerConfig& s : config.findBackend(backend)->servers) names.push_back(s.name);
  return names;
}

// Everything a change may touch, as text: equal texts, equal configs for these tests.
std::string snapshot(const Config& config) {
  std::ostringstream out;
  for (const BackendConfig& b : config.backends) {
    out << "backend " << b.name << " deny " << b.deny << "\n";
    for (const ServerConfig& s : b.servers) {
      out << "  " << s.name << " " << s.address.text() << " w" << s.weight << " a" << int(s.admin)
          << " d" << s.disabled << " c" << s.check << "\n";
    }
  }
  for (const FrontendConfig& f : config.frontends) {
    out << "frontend " << f.name << "\n";
    for (const RuntimeCertificate& c : f.runtimeCertificates) out << "  cert " << c.name << "\n";
    for (const RouteConfig& r : f.routes)
      for (const auto& [host, value] : r.mapEntries)
        out << "  map " << host << " " << value << "\n";
  }
  return out.str();
}

// Installs a certificate validator for one test, and removes it after.
struct ScopedCertificateValidator {
  explicit ScopedCertificateValidator(CertificateValidator v) {
    setCertificateValidator(std::move(v));
  }
  ~ScopedCertificateValidator() { setCertificateValidator(nullptr); }
};

}  // namespace

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

TEST_CASE("cert.set adds a runtime certificate, inline or from a file", "[runtime_change]") {
  Config c = testConfig();
  std::vector<std::string> checked;
  ScopedCertificateValidator validator([&](const std::string& pem) {
    checked.push_back(pem);
    return "";
  });
  json inlined = {{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "shop"}, {"pem", "SHOP PEM"}};
  REQUIRE(applyRuntimeChange(c, inlined, kFiles) == "");
  json fromFile = {{"cmd", "cert.set"}, {"frontend", "www"}, {"path", "/certs/new.pem"}};
  REQUIRE(applyRuntimeChange(c, fromFile, kFiles) == "");
  // The journal keeps a self-contained form: the file's text, named by its path.
  CHECK(fromFile == json{{"cmd", "cert.set"},
                         {"frontend", "www"},
                         {"name", "/certs/new.pem"},
                         {"pem", "NEW PEM"}});
  CHECK(checked == std::vector<std::string>{"SHOP PEM", "NEW PEM"});
  const auto& certs = c.frontends[0].runtimeCertificates;
  REQUIRE(certs.size() == 2);
  CHECK(certs[0].name == "shop");
  CHECK(certs[0].pem == "SHOP PEM");
  CHECK(certs[1].name == "/certs/new.pem");

  // The same name replaces, in place.
  REQUIRE(
      apply(c,
            {{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "shop"}, {"pem", "SHOP PEM 2"}}) ==
      "");
  REQUIRE(certs.size() == 2);
  CHECK(certs[0].pem == "SHOP PEM 2");
}

TEST_CASE("cert.set is refused with the field at fault", "[runtime_change]") {
  Config c = testConfig();
  ScopedCertificateValidator validator([](const std::string& pem) -> std::string {
    return pem == "BAD" ? "no PEM certificate" : "";
  });
  std::string before = snapshot(c);
  auto set = [&](json fields) {
    json change = {{"cmd", "cert.set"}, {"frontend", "www"}};
    change.update(fields);
    return apply(c, change);
  };
  CHECK(set({{"name", "x"}, {"pem", "BAD"}}) == "pem: no PEM certificate");
  CHECK(set({{"path", "/certs/none.pem"}}) ==
        "path: /certs/none.pem: cannot read: No such file or directory");
  CHECK(set({{"path", "certs/new.pem"}}) == "path: expected an absolute path (starting with '/')");
  CHECK(set({{"name", "x"}, {"pem", "P"}, {"path", "/certs/new.pem"}}) ==
        "pem: give either pem or path, not both");
  CHECK(set({{"name", "x"}}) == "pem: missing (cert.set needs pem or path)");
  CHECK(set({{"pem", "P"}}) == "name: missing (cert.set with pem needs it)");
  CHECK(set({{"name", ""}, {"pem", "P"}}) == "name: must not be empty");
  CHECK(set({{"name", "x"}, {"pem", ""}}) == "pem: must not be empty");
  CHECK(apply(c, {{"cmd", "cert.set"}, {"frontend", "plain"}, {"name", "x"}, {"pem", "P"}}) ==
        "frontend: plain has no TLS bind");
  CHECK(apply(c, {{"cmd", "cert.set"}, {"frontend", "ww"}, {"name", "x"}, {"pem", "P"}}) ==
        "frontend: no frontend named 'ww' (did you mean 'www'?)");
  CHECK(snapshot(c) == before);
}

TEST_CASE("cert.del removes a runtime certificate but not one of the file's", "[runtime_change]") {
  Config c = testConfig();
  REQUIRE(apply(c, {{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "shop"}, {"pem", "P"}}) ==
          "");
  std::string withShop = snapshot(c);
  CHECK(apply(c, {{"cmd", "cert.del"}, {"frontend", "www"}, {"name", "/certs/site.pem"}}) ==
        "name: /certs/site.pem comes from the config file (frontends[0].certificates[0]): edit "
        "the file and reload");
  CHECK(apply(c, {{"cmd", "cert.del"}, {"frontend", "www"}, {"name", "shpo"}}) ==
        "name: www has no runtime certificate named 'shpo' (did you mean 'shop'?)");
  CHECK(snapshot(c) == withShop);
  REQUIRE(apply(c, {{"cmd", "cert.del"}, {"frontend", "www"}, {"name", "shop"}}) == "");
  CHECK(c.frontends[0].runtimeCertificates.empty());
}

TEST_CASE("map.set adds or replaces a host-map entry as a map file line would",
          "[runtime_change]") {
  Config c = testConfig();
  json change = {
      {"cmd", "map.set"}, {"frontend", "www"}, {"host", "New.Example.COM"}, {"value", "2"}};
  REQUIRE(applyRuntimeChange(c, change, kFiles) == "");
  CHECK(change["host"] == "new.example.com");
  REQUIRE(apply(c, {{"cmd", "map.set"},
                    {"frontend", "www"},
                    {"host", "one.example.com"},
                    {"value", "app"},
                    {"route", 2}}) == "");
  const auto& entries = c.frontends[0].routes[2].mapEntries;
  using Entries = std::vector<std::pair<std::string, std::string>>;
  CHECK(entries ==
        Entries{{"one.example.com", "app"}, {"two.example.com", "2"}, {"new.example.com", "2"}});
  // A number is the value's text (molt ctl sends "1" as a number).
  json numeric = {
      {"cmd", "map.set"}, {"frontend", "www"}, {"host", "*.wild.example.com"}, {"value", 1}};
  REQUIRE(applyRuntimeChange(c, numeric, kFiles) == "");
  CHECK(numeric["value"] == "1");
  CHECK(entries.back() == std::pair<std::string, std::string>{"*.wild.example.com", "1"});
}

TEST_CASE("map.set and map.del are refused with the field at fault", "[runtime_change]") {
  Config c = testConfig();
  std::string before = snapshot(c);
  auto set = [&](json fields) {
    json change = {
        {"cmd", "map.set"}, {"frontend", "www"}, {"host", "x.example.com"}, {"value", "1"}};
    change.update(fields);
    return apply(c, change);
  };
  CHECK(set({{"value", "x"}}) == "value: no backend named 'bk_x' (did you mean 'bk_1'?)");
  CHECK(set({{"value", "a b"}}) ==
        "value: must be one word without spaces or '#', as in a map file");
  CHECK(set({{"host", "bad host"}}) ==
        "host: bad host 'bad host': expected a host name or \"*.domain\"");
  CHECK(set({{"route", 1}}) == "route: frontends[0].routes[1] is not a host_map route");
  CHECK(set({{"route", 3}}) == "route: www has no frontends[0].routes[3] (it has 3 routes)");
  CHECK(set({{"route", "2"}}) == "route: expected an integer");
  CHECK(set({{"route", -1}}) == "route: must be at least 0");
  CHECK(set({{"value", -1}}) == "value: expected a string");
  CHECK(set({{"frontend", "plain"}}) == "frontend: plain has no host_map route");
  CHECK(apply(c, {{"cmd", "map.del"}, {"frontend", "www"}, {"host", "zzz.example.com"}}) ==
        "host: no entry for 'zzz.example.com' in the host map /maps/hosts.map");
  CHECK(snapshot(c) == before);
  REQUIRE(apply(c, {{"cmd", "map.del"}, {"frontend", "www"}, {"host", "TWO.example.com"}}) == "");
  CHECK(c.frontends[0].routes[2].mapEntries.size() == 1);
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
