#include "common/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <stdexcept>
#include <thread>

#include "tests/common/config_test_support.hpp"

using namespace molt::common;
using namespace molt::test;
using namespace std::chrono_literals;

TEST_CASE("an empty config takes every default", "[config]") {
  Config c = parse("{}");
  CHECK(c.fileName == "molt.json");
  CHECK(c.global.workers == std::max(1u, std::thread::hardware_concurrency()));
  CHECK(c.global.hardStopAfter == 30min);
  CHECK(c.global.maxOldGenerations == 4);
  CHECK(c.global.closeSpread == 5s);
  CHECK(c.global.apiSocket.empty());
  CHECK(c.global.logFormat == LogFormat::Text);
  CHECK(c.tls.sessionCacheBytes == 0);
  CHECK(c.tls.ticketKeyRotation == 12h);
  CHECK(c.tls.minVersion == "TLSv1.2");
  CHECK(c.frontends.empty());
  CHECK(c.backends.empty());
  CHECK(c.sideFiles.empty());
}

TEST_CASE("frontend, bind, backend and server defaults", "[config]") {
  Config c = parse(R"({
    "frontends": [{"name": "f", "bind": ["127.0.0.1:0"]}],
    "backends": [{"name": "b", "servers": [{"name": "s", "address": "127.0.0.1:9"}]}]
  })");
  const FrontendConfig& f = c.frontends.at(0);
  CHECK(f.mode == Mode::Http);
  CHECK(f.defaultBackend.empty());
  CHECK(f.timeouts.client == 50s);
  CHECK(f.timeouts.httpRequest == 10s);
  CHECK(f.timeouts.keepAlive == 5s);
  REQUIRE(f.binds.size() == 1);
  CHECK(f.binds[0].text == "127.0.0.1:0");
  CHECK_FALSE(f.binds[0].tls);
  CHECK(f.binds[0].backlog == 1024);
  const BackendConfig& b = c.backends.at(0);
  CHECK(b.balance == Balance::RoundRobin);
  CHECK_FALSE(b.check);
  CHECK(b.timeouts.connect == 5s);
  CHECK(b.timeouts.server == 50s);
  CHECK(b.timeouts.tunnel == 1h);
  CHECK(b.retries == 3);
  CHECK(b.deny == 0);
  REQUIRE(b.servers.size() == 1);
  CHECK(b.servers[0].name == "s");
  CHECK(b.servers[0].address.text() == "127.0.0.1:9");
  CHECK(b.servers[0].address.text() == "127.0.0.1:9");
  CHECK(b.servers[0].weight == 1);
  CHECK_FALSE(b.servers[0].check);
  CHECK_FALSE(b.servers[0].disabled);
  CHECK(b.checkOf(b.servers[0]) == nullptr);
}

// INTERFACE.md's example, with two changes so that it is valid on any machine: the "well_known"
// backend it routes to is defined, and user/group are "root" (a "molt" account may not exist).
constexpr std::string_view kInterfaceExample = R"({
  "global": {
    "workers": 2,                     // default: number of CPUs
    "hard_stop_after": "30m",         // an old generation is stopped this long after its drain began
    "max_old_generations": 4,         // past it, the oldest draining generation is stopped
    "close_spread": "5s",             // idle keep-alive closes spread over this window on drain
    "api_socket": "/run/molt/api.sock",
    "user": "root", "group": "root"   // optional privilege drop after binding
  },
  "tls": {
    "session_cache": "64MB",          // one shared-memory zone for all workers and generations
    "ticket_key_rotation": "12h"
  },
  "frontends": [{
    "name": "www",
    "mode": "http",                   // "http" or "tcp"
    "bind": ["127.0.0.1:8080", {"address": "127.0.0.1:8443", "tls": true}],
    "certificates": ["/etc/molt/certs/"],      // files or directories of PEM (cert+key); SNI picks
    "routes": [
      {"path_prefix": "/.well-known/acme-challenge/", "backend": "well_known"},
      {"host": "app.example.com", "backend": "bk_1"},
      {"host_map": "/etc/molt/domain-to-app.map", "backend_prefix": "bk_"}   // "host value" lines
    ],
    "default_backend": "bk_no_match",
    "timeouts": {"client": "50s", "http_request": "10s", "keep_alive": "5s"}
  }],
  "backends": [{
    "name": "bk_1",
    "balance": "roundrobin",          // roundrobin | leastconn | source | random
    "check": {"type": "http", "path": "/health", "interval": "2s", "rise": 2, "fall": 3},
    "timeouts": {"connect": "5s", "server": "50s", "tunnel": "1h"},
    "servers": [
      {"name": "server1", "address": "127.0.0.1:1024", "weight": 1},
      {"template": "server", "from": 3, "to": 101, "address": "127.0.0.1:8080",
       "check": true, "disabled": true}                 // server3 … server101
    ]
  }, {
    "name": "bk_no_match", "deny": 403               // a backend that answers by itself
  }, {
    "name": "well_known", "servers": [{"name": "acme", "address": "127.0.0.1:8402"}]
  }]
})";

MemoryFiles interfaceFiles() {
  MemoryFiles m;
  m.files["/etc/molt/domain-to-app.map"] =
      "# host backend-suffix\nshop.example.com 1\n\nBlog.Example.com   no_match  # trailing\n";
  m.dirs["/etc/molt/certs/"] = {"example.com.pem", "shop.example.com.pem"};
  m.files["/etc/molt/certs/example.com.pem"] = "PEM 1";
  m.files["/etc/molt/certs/shop.example.com.pem"] = "PEM 2";
  return m;
}

TEST_CASE("the INTERFACE.md example config parses", "[config]") {
  MemoryFiles files = interfaceFiles();
  Config c = parse(kInterfaceExample, files);
  CHECK(c.global.workers == 2);
  CHECK(c.global.apiSocket == "/run/molt/api.sock");
  CHECK(c.global.user == "root");
  CHECK(c.tls.sessionCacheBytes == 64u << 20);
  REQUIRE(c.frontends.size() == 1);
  const FrontendConfig& f = c.frontends[0];
  REQUIRE(f.binds.size() == 2);
  CHECK(f.binds[0].text == "127.0.0.1:8080");
  CHECK(f.binds[1].text == "127.0.0.1:8443");
  CHECK(f.binds[1].tls);
  CHECK(f.certificates == std::vector<std::string>{"/etc/molt/certs/"});
  REQUIRE(f.routes.size() == 3);
  CHECK(f.routes[0].kind == RouteConfig::Kind::PathPrefix);
  CHECK(f.routes[0].value == "/.well-known/acme-challenge/");
  CHECK(f.routes[0].backend == "well_known");
  CHECK(f.routes[1].kind == RouteConfig::Kind::Host);
  CHECK(f.routes[1].value == "app.example.com");
  CHECK(f.routes[2].kind == RouteConfig::Kind::HostMap);
  CHECK(f.routes[2].backendPrefix == "bk_");
  using Entries = std::vector<std::pair<std::string, std::string>>;
  CHECK(f.routes[2].mapEntries ==
        Entries{{"shop.example.com", "1"}, {"blog.example.com", "no_match"}});
  CHECK(f.defaultBackend == "bk_no_match");
  REQUIRE(c.backends.size() == 3);
  const BackendConfig& b = *c.findBackend("bk_1");
  REQUIRE(b.check);
  CHECK(b.check->type == CheckType::Http);
  CHECK(b.check->path == "/health");
  REQUIRE(b.servers.size() == 100);
  CHECK(b.servers[0].name == "server1");
  CHECK(b.servers[1].name == "server3");
  CHECK(b.servers[99].name == "server101");
  CHECK(b.servers[1].disabled);
  CHECK(b.servers[1].check);
  CHECK(b.checkOf(b.servers[1]) == &*b.check);
  CHECK(b.servers[0].check);  // the backend has a check object
  CHECK(c.findBackend("bk_no_match")->deny == 403);
  CHECK(c.findBackend("nope") == nullptr);
  CHECK(c.sideFiles == std::vector<std::string>{
                           "/etc/molt/certs/", "/etc/molt/certs/example.com.pem",
                           "/etc/molt/certs/shop.example.com.pem", "/etc/molt/domain-to-app.map"});
}

TEST_CASE("a template expands to name+N for N in from..to with its fields", "[config]") {
  Config c = parse(R"({"backends": [{"name": "b", "servers": [
    {"template": "web-", "from": 0, "to": 2, "address": "127.0.0.1:80", "weight": 7},
    {"name": "web-3", "address": "[::1]:81"},
    {"template": "x", "from": 5, "to": 5, "address": "127.0.0.1:82", "disabled": true}
  ]}]})");
  const auto& servers = c.backends[0].servers;
  REQUIRE(servers.size() == 5);
  std::vector<std::string> names;
  for (const ServerConfig& s : servers) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"web-0", "web-1", "web-2", "web-3", "x5"});
  CHECK(servers[2].weight == 7);
  CHECK(servers[2].address.text() == "127.0.0.1:80");
  CHECK(servers[3].address.text() == "[::1]:81");
  CHECK(servers[4].disabled);
}

TEST_CASE("server checks resolve against the backend's check object", "[config]") {
  Config c = parse(R"({"backends": [
    {"name": "plain", "servers": [
      {"name": "a", "address": "127.0.0.1:1"},
      {"name": "b", "address": "127.0.0.1:1", "check": true},
      {"name": "c", "address": "127.0.0.1:1", "check": {"interval": "10s"}}]},
    {"name": "checked", "check": {"type": "http", "path": "/h", "status": "200-299", "rise": 5},
     "servers": [
      {"name": "a", "address": "127.0.0.1:1"},
      {"name": "b", "address": "127.0.0.1:1", "check": false},
      {"name": "c", "address": "127.0.0.1:1", "check": {"path": "/deep", "status": 204}}]}
  ]})");
  const BackendConfig& plain = c.backends[0];
  CHECK_FALSE(plain.servers[0].check);
  CHECK(plain.servers[1].check);
  REQUIRE(plain.checkOf(plain.servers[1]));
  CHECK(plain.checkOf(plain.servers[1])->type == CheckType::Tcp);
  CHECK(plain.servers[2].check);
  CHECK(plain.checkOf(plain.servers[2])->interval == 10s);
  CHECK(plain.checkOf(plain.servers[2])->type == CheckType::Tcp);

  const BackendConfig& checked = c.backends[1];
  CHECK(checked.check->statusMin == 200);
  CHECK(checked.check->statusMax == 299);
  CHECK(checked.servers[0].check);
  CHECK_FALSE(checked.servers[0].checkOverride);
  CHECK_FALSE(checked.servers[1].check);
  REQUIRE(checked.servers[2].checkOverride);
  const CheckConfig& merged = *checked.servers[2].checkOverride;
  CHECK(merged.type == CheckType::Http);
  CHECK(merged.path == "/deep");
  CHECK(merged.rise == 5);
  CHECK(merged.statusMin == 204);
  CHECK(merged.statusMax == 204);
}

TEST_CASE("every global and tls key is read", "[config]") {
  Config c = parse(R"({
    "global": {"workers": 3, "hard_stop_after": "1h", "max_old_generations": 0,
               "close_spread": "0s", "api_socket": "/run/a.sock", "state_file": "/var/lib/s",
               "log_format": "json"},
    "tls": {"session_cache": "0B", "ticket_key_rotation": "1m", "session_timeout": "10m",
            "ciphers": "HIGH", "ciphersuites": "TLS_AES_128_GCM_SHA256", "min_version": "TLSv1.3",
            "prefer_server_ciphers": true}
  })");
  CHECK(c.global.workers == 3);
  CHECK(c.global.hardStopAfter == 1h);
  CHECK(c.global.maxOldGenerations == 0);
  CHECK(c.global.closeSpread == 0s);
  CHECK(c.global.stateFile == "/var/lib/s");
  CHECK(c.global.logFormat == LogFormat::Json);
  CHECK(c.tls.ticketKeyRotation == 1min);
  CHECK(c.tls.sessionTimeout == 10min);
  CHECK(c.tls.ciphers == "HIGH");
  CHECK(c.tls.ciphersuites == "TLS_AES_128_GCM_SHA256");
  CHECK(c.tls.minVersion == "TLSv1.3");
  CHECK(c.tls.preferServerCiphers);
  CHECK_FALSE(parse(R"({"tls": {}})").tls.preferServerCiphers);
}

TEST_CASE("an address bound twice names the first bind", "[config]") {
  CHECK(errors(text({
            R"({"frontends": [)",
            R"(  {"name": "a", "bind": ["127.0.0.1:8080", "*:81"]},)",
            R"(  {"name": "b", "bind": [{"address": "127.0.0.1:8080"}, "0.0.0.0:81"]}]})",
        })) ==
        Lines{
            "molt.json:3:38: frontends[1].bind[0].address: address already bound by "
            "frontends[0].bind[0]",
            "molt.json:3:57: frontends[1].bind[1]: address already bound by frontends[0].bind[1]",
        });
}

TEST_CASE("comments of both styles are accepted in a config", "[config]") {
  Config c = parse(R"(// molt
  { /* the workers */ "global": {"workers": 3 /* three */}, // end of line
    "tls": {} }  /* trailing */)");
  CHECK(c.global.workers == 3);
}
