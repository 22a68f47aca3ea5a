#include "common/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <stdexcept>
#include <thread>

using namespace molt::common;
using namespace std::chrono_literals;

namespace {

// Side files served from memory: no temp files, and every read is visible to the test.
struct MemoryFiles {
  std::map<std::string, std::string> files;
  std::map<std::string, std::vector<std::string>> dirs;

  FileSource source() const {
    FileSource s;
    s.read = [this](const std::string& path, std::string& error) -> std::optional<std::string> {
      auto it = files.find(path);
      if (it != files.end()) return it->second;
      error = dirs.count(path) ? "Is a directory" : "No such file or directory";
      return std::nullopt;
    };
    s.list = [this](const std::string& path,
                    std::string& error) -> std::optional<std::vector<std::string>> {
      auto it = dirs.find(path);
      if (it != dirs.end()) return it->second;
      error = files.count(path) ? "Not a directory" : "No such file or directory";
      return std::nullopt;
    };
    return s;
  }
};

const MemoryFiles kNoFiles;

Config parse(std::string_view text, const MemoryFiles& files = kNoFiles) {
  try {
    return parseConfig(text, "molt.json", files.source());
  } catch (const ConfigErrors& e) {
    FAIL("unexpected config errors:\n" << e.what());
    throw;
  }
}

// Every error of `text` as printed by molt -c.
std::vector<std::string> errors(std::string_view text, const MemoryFiles& files = kNoFiles) {
  try {
    parseConfig(text, "molt.json", files.source());
  } catch (const ConfigErrors& e) {
    std::vector<std::string> out;
    for (const ConfigError& error : e.errors()) out.push_back(error.str());
    return out;
  }
  return {};
}

using Lines = std::vector<std::string>;

// Joins one string per line, so that a test reads its column numbers straight off its source.
std::string text(std::initializer_list<std::string_view> lines) {
  std::string out;
  for (std::string_view line : lines) out.append(line).append("\n");
  return out;
}

}  // namespace

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
            "ciphers": "HIGH", "ciphersuites": "TLS_AES_128_GCM_SHA256", "min_version": "TLSv1.3"}
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
}

TEST_CASE("a template range reversed is reported with its path and line", "[config]") {
  CHECK(errors(text({
            R"({"backends": [{"name": "b", "servers": [)",
            R"(  {"name": "s1", "address": "127.0.0.1:1"},)",
            R"(  {"template": "s", "from": 9, "to": 3, "address": "127.0.0.1:1"})",
            R"(]}]})",
        })) ==
        Lines{"molt.json:3:38: backends[0].servers[1].to: template range reversed: from 9 > to 3"});
}

TEST_CASE("duplicate frontend, backend and server names are reported at the second", "[config]") {
  CHECK(errors(text({
            R"({"frontends": [)",
            R"(  {"name": "www", "bind": ["127.0.0.1:0"]},)",
            R"(  {"name": "www", "bind": ["127.0.0.1:0"]})",
            R"(], "backends": [)",
            R"(  {"name": "b", "servers": [)",
            R"(    {"name": "s1", "address": "127.0.0.1:1"},)",
            R"(    {"template": "s", "from": 0, "to": 3, "address": "127.0.0.1:1"},)",
            R"(    {"name": "s2", "address": "127.0.0.1:1"}]},)",
            R"(  {"name": "b"})",
            R"(]})",
        })) ==
        Lines{
            "molt.json:3:12: frontends[1].name: duplicate frontend name 'www' (first at "
            "frontends[0])",
            "molt.json:7:18: backends[0].servers[1].template: duplicate server name 's1' (first at "
            "backends[0].servers[0])",
            "molt.json:8:14: backends[0].servers[2].name: duplicate server name 's2' (first at "
            "backends[0].servers[1])",
            "molt.json:9:12: backends[1].name: duplicate backend name 'b' (first at backends[0])",
        });
}

TEST_CASE("two templates that overlap are reported once, not once per name", "[config]") {
  CHECK(errors(R"({"backends": [{"name": "b", "servers": [
    {"template": "s", "from": 0, "to": 999, "address": "127.0.0.1:1"},
    {"template": "s", "from": 0, "to": 999, "address": "127.0.0.1:1"}]}]})")
            .size() == 1);
}

TEST_CASE("an unknown backend referenced is reported where it is named", "[config]") {
  CHECK(errors(text({
            R"({"frontends": [{"name": "f", "bind": ["127.0.0.1:0"],)",
            R"(  "routes": [{"host": "a.com", "backend": "bk_9"}],)",
            R"(  "default_backend": "nope"}],)",
            R"( "backends": [{"name": "bk_1"}]})",
        })) == Lines{
                   "molt.json:2:43: frontends[0].routes[0].backend: unknown backend 'bk_9'",
                   "molt.json:3:22: frontends[0].default_backend: unknown backend 'nope'",
               });
}

TEST_CASE("bad addresses and ports out of range are reported at the address", "[config]") {
  Lines got = errors(text({
      R"({"frontends": [{"name": "f", "bind": ["127.0.0.1:70000", {"address": "[::1"}]}],)",
      R"( "backends": [{"name": "b", "servers": [)",
      R"(   {"name": "a", "address": "127.0.0.1"},)",
      R"(   {"name": "b", "address": "127.0.0.1:0"},)",
      R"(   {"name": "c", "address": "no-such-host.invalid:80"}]}]})",
  }));
  REQUIRE(got.size() == 5);
  CHECK(got[0] == "molt.json:1:39: frontends[0].bind[0]: port out of range");
  CHECK(got[1] == "molt.json:1:70: frontends[0].bind[1].address: bad IPv6 literal (missing ']')");
  CHECK(got[2] == "molt.json:3:29: backends[0].servers[0].address: missing port");
  CHECK(got[3] == "molt.json:4:29: backends[0].servers[1].address: port out of range");
  CHECK_THAT(got[4], Catch::StartsWith("molt.json:5:29: backends[0].servers[2].address: cannot "
                                       "resolve 'no-such-host.invalid': "));
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

TEST_CASE("wrong types, bad durations and bad sizes are reported per key", "[config]") {
  CHECK(
      errors(text({
          R"({"global": {"hard_stop_after": "30", "close_spread": 5, "workers": "2",)",
          R"(   "api_socket": "run/x"},)",
          R"( "tls": {"session_cache": "64", "ticket_key_rotation": "30s", "session_timeout": true},)",
          R"( "frontends": [{"name": 1, "bind": "127.0.0.1:1", "mode": "htp"}],)",
          R"( "backends": [{"name": "b", "check": [], "retries": 1.5, "servers": {}}]})",
      })) ==
      Lines{
          "molt.json:1:32: global.hard_stop_after: missing unit (ms, s, m, h)",
          "molt.json:1:54: global.close_spread: expected a duration like \"5s\"",
          "molt.json:1:68: global.workers: expected an integer",
          "molt.json:2:18: global.api_socket: expected an absolute path (starting with '/')",
          "molt.json:3:27: tls.session_cache: missing unit (B, KB, MB, GB)",
          "molt.json:3:56: tls.ticket_key_rotation: must be at least 1m",
          "molt.json:3:82: tls.session_timeout: expected a duration like \"5s\"",
          "molt.json:4:25: frontends[0].name: expected a string",
          "molt.json:4:36: frontends[0].bind: expected an array",
          "molt.json:4:59: frontends[0].mode: expected one of \"http\", \"tcp\" (did you mean "
          "\"http\"?)",
          "molt.json:5:38: backends[0].check: expected an object",
          "molt.json:5:53: backends[0].retries: expected an integer",
          "molt.json:5:69: backends[0].servers: expected an array",
      });
}

TEST_CASE("a size and a boolean of the wrong type say what they expect", "[config]") {
  CHECK(errors(R"({"tls": {"session_cache": 64},
  "frontends": [{"name": "f", "bind": [{"address": "127.0.0.1:0", "tls": "yes"}]}]})") ==
        Lines{
            "molt.json:1:27: tls.session_cache: expected a size like \"64MB\"",
            "molt.json:2:74: frontends[0].bind[0].tls: expected a boolean",
        });
}

TEST_CASE("an unknown key is an error with a did-you-mean hint when one is close", "[config]") {
  CHECK(errors(text({
            R"({"global": {"wokers": 2, "zzz": 1},)",
            R"( "backend": []})",
        })) == Lines{
                   "molt.json:1:13: global.wokers: unknown key 'wokers' (did you mean 'workers'?)",
                   "molt.json:1:26: global.zzz: unknown key 'zzz'",
                   "molt.json:2:2: backend: unknown key 'backend' (did you mean 'backends'?)",
               });
}

TEST_CASE("a syntax error has a position and no path", "[config]") {
  CHECK(errors("{\n  \"global\": {}\n  \"tls\": {}\n}") ==
        Lines{"molt.json:3:3: expected ',' or '}' after object member"});
  CHECK(errors("{\"global\": {},}") ==
        Lines{"molt.json:1:15: trailing comma before '}' (not allowed in JSON)"});
  CHECK(errors("") == Lines{"molt.json:1:1: empty document: expected a value"});
}

TEST_CASE("comments of both styles are accepted in a config", "[config]") {
  Config c = parse(R"(// molt
  { /* the workers */ "global": {"workers": 3 /* three */}, // end of line
    "tls": {} }  /* trailing */)");
  CHECK(c.global.workers == 3);
}

TEST_CASE("a duplicate JSON key is reported with its path, along with other errors", "[config]") {
  CHECK(errors(R"({"global": {"workers": 2,
  "workers": 3, "close_spread": 1}})") ==
        Lines{
            "molt.json:2:3: global.workers: duplicate key 'workers' (first at line 1, column 13)",
            "molt.json:2:33: global.close_spread: expected a duration like \"5s\"",
        });
}

TEST_CASE("a config with six different errors yields all six in file order", "[config]") {
  Lines got = errors(text({
      R"({)",
      R"(  "global": {"workers": 2000},)",
      R"(  "frontends": [{"name": "f", "bind": ["127.0.0.1:99999"], "default_backend": "missing"}],)",
      R"(  "backends": [{"name": "b", "timeouts": {"connect": "5"},)",
      R"(                "servers": [{"template": "s", "from": 9, "to": 3, "address": "127.0.0.1:1"}]}],)",
      R"(  "extra": true)",
      R"(})",
  }));
  CHECK(got ==
        Lines{
            "molt.json:2:25: global.workers: must be between 1 and 1024",
            "molt.json:3:40: frontends[0].bind[0]: port out of range",
            "molt.json:3:79: frontends[0].default_backend: unknown backend 'missing'",
            "molt.json:4:54: backends[0].timeouts.connect: missing unit (ms, s, m, h)",
            "molt.json:5:64: backends[0].servers[0].to: template range reversed: from 9 > to 3",
            "molt.json:6:3: extra: unknown key 'extra'",
        });
}

TEST_CASE("host maps load through the FileSource and report each bad line", "[config]") {
  MemoryFiles files;
  files.files["/m.map"] = text({
      "# host  backend suffix",
      "a.com 1",
      "",
      "B.com 2 extra",
      "c.com 9",
      "A.COM 1",
      "bad..host 1",
      "lonely",
      "  d.com\t2   # comment",
  });
  const std::string at = "molt.json:2:17: frontends[0].routes[0].host_map: /m.map:";
  CHECK(errors(text({
                   R"({"frontends": [{"name": "f", "bind": ["127.0.0.1:0"], "routes": [)",
                   R"(   {"host_map": "/m.map", "backend_prefix": "bk_"},)",
                   R"(   {"host_map": "/missing.map", "backend_prefix": ""}]}],)",
                   R"( "backends": [{"name": "bk_1"}, {"name": "bk_2"}]})",
               }),
               files) == Lines{
                             at + "4: expected 'host value'",
                             at + "5: unknown backend 'bk_9'",
                             at + "6: duplicate host 'a.com' (first at line 2)",
                             at + "7: bad host 'bad..host'",
                             at + "8: expected 'host value'",
                             "molt.json:3:17: frontends[0].routes[1].host_map: /missing.map: "
                             "cannot read: No such file or directory",
                         });
}

TEST_CASE("a valid host map keeps its entries in file order, hosts lower-cased", "[config]") {
  MemoryFiles files;
  files.files["/m.map"] = "Z.example.com a\r\n*.Wild.org b\n\n# end\nx.org a";
  Config c = parse(R"({"frontends": [{"name": "f", "bind": ["127.0.0.1:0"], "routes": [
      {"host_map": "/m.map", "backend_prefix": ""},
      {"host_map": "/m.map", "backend_prefix": ""}]}],
    "backends": [{"name": "a"}, {"name": "b"}]})",
                   files);
  using Entries = std::vector<std::pair<std::string, std::string>>;
  const RouteConfig& route = c.frontends[0].routes[0];
  CHECK(route.value == "/m.map");
  CHECK(route.mapEntries == Entries{{"z.example.com", "a"}, {"*.wild.org", "b"}, {"x.org", "a"}});
  CHECK(c.sideFiles == std::vector<std::string>{"/m.map"});
}

TEST_CASE("route rules: one kind each, backends where needed, http mode only", "[config]") {
  CHECK(errors(text({
            R"({"frontends": [)",
            R"(  {"name": "t", "mode": "tcp", "bind": ["127.0.0.1:0"], "routes": []},)",
            R"(  {"name": "h", "bind": ["127.0.0.1:0"], "routes": [)",
            R"(    {"path_prefix": "/a", "host": "a.com", "backend": "b"},)",
            R"(    {"backend": "b"},)",
            R"(    {"host_map": "/m.map", "backend": "b", "backend_prefix": ""},)",
            R"(    {"path_prefix": "a", "backend": "b"},)",
            R"(    {"host": "*.", "backend_prefix": "b", "backend": "b"},)",
            R"(    {"host": "A.Example.COM"}]}],)",
            R"( "backends": [{"name": "b"}]})",
        })) ==
        Lines{
            "molt.json:2:3: frontends[0]: missing required key 'default_backend' (mode tcp)",
            "molt.json:2:67: frontends[0].routes: routes need mode http",
            "molt.json:4:35: frontends[1].routes[0].host: a route takes only one of "
            "'path_prefix', 'host', 'host_map'",
            "molt.json:5:5: frontends[1].routes[1]: a route needs one of 'path_prefix', 'host', "
            "'host_map'",
            "molt.json:6:18: frontends[1].routes[2].host_map: /m.map: cannot read: No such file or "
            "directory",
            "molt.json:6:39: frontends[1].routes[2].backend: not allowed with 'host_map' (use "
            "'backend_prefix')",
            "molt.json:7:21: frontends[1].routes[3].path_prefix: must start with '/'",
            "molt.json:8:14: frontends[1].routes[4].host: expected a host name or \"*.domain\"",
            "molt.json:8:38: frontends[1].routes[4].backend_prefix: only allowed with 'host_map'",
            "molt.json:9:5: frontends[1].routes[5]: missing required key 'backend'",
        });
}

TEST_CASE("certificates must exist and are required by a tls bind", "[config]") {
  MemoryFiles files;
  files.files["/c.pem"] = "PEM";
  files.dirs["/dir"] = {"a.pem"};
  files.files["/dir/a.pem"] = "PEM";
  files.dirs["/broken"] = {"gone.pem"};
  std::string config = text({
      R"({"frontends": [)",
      R"(  {"name": "a", "bind": [{"address": "127.0.0.1:0", "tls": true}]},)",
      R"(  {"name": "b", "bind": [{"address": "127.0.0.1:0", "tls": "yes"}], "certificates": []},)",
      R"(  {"name": "c", "bind": [{"address": "127.0.0.1:0", "tls": true}], "certificates": []},)",
      R"(  {"name": "d", "bind": ["127.0.0.1:0"], "certificates": ["/c.pem", "/dir", "/none", ""]},)",
      R"(  {"name": "e", "bind": ["127.0.0.1:0"], "certificates": ["/broken"]}]})",
  });
  CHECK(
      errors(config, files) ==
      Lines{
          "molt.json:2:3: frontends[0]: missing required key 'certificates' (a bind has \"tls\": "
          "true)",
          "molt.json:3:60: frontends[1].bind[0].tls: expected a boolean",
          "molt.json:4:84: frontends[2].certificates: must not be empty: a bind has \"tls\": true",
          "molt.json:5:77: frontends[3].certificates[2]: /none: cannot read: No such file or "
          "directory",
          "molt.json:5:86: frontends[3].certificates[3]: must not be empty",
          "molt.json:6:59: frontends[4].certificates[0]: /broken/gone.pem: cannot read: No such "
          "file or directory",
      });
}

TEST_CASE("side files are recorded once each, in first-read order", "[config]") {
  MemoryFiles files;
  files.files["/c.pem"] = "PEM";
  files.files["/m.map"] = "a.com b\n";
  files.dirs["/dir"] = {"x.pem", "y.pem"};
  files.files["/dir/x.pem"] = "X";
  files.files["/dir/y.pem"] = "Y";
  Config c = parse(R"({"frontends": [
    {"name": "a", "bind": [{"address": "127.0.0.1:0", "tls": true}], "certificates": ["/dir", "/c.pem"],
     "routes": [{"host_map": "/m.map", "backend_prefix": ""}]},
    {"name": "b", "bind": ["127.0.0.1:0"], "certificates": ["/c.pem", "/dir"],
     "routes": [{"host_map": "/m.map", "backend_prefix": ""}]}],
    "backends": [{"name": "b"}]})",
                   files);
  CHECK(c.frontends[0].certificates == std::vector<std::string>{"/dir", "/c.pem"});
  CHECK(c.sideFiles ==
        std::vector<std::string>{"/dir", "/dir/x.pem", "/dir/y.pem", "/c.pem", "/m.map"});
}

TEST_CASE("check, deny, weight and template errors are reported per key", "[config]") {
  CHECK(
      errors(text({
          R"({"backends": [{"name": "b", "deny": 403,)",
          R"(  "check": {"type": "udp", "status": "399-200", "method": "G T", "path": "h", "rise": 0,)",
          R"(            "interval": "0s", "timeout": "1x"},)",
          R"(  "servers": [{"name": "s", "address": "127.0.0.1:1", "check": "yes", "weight": 257}]},)",
          R"( {"name": "c", "check": {"status": 700}, "servers": [{"template": "t", "from": 0,)",
          R"(  "to": 1000000, "address": "127.0.0.1:1", "name": "x"}, {"template": "u", "address": "127.0.0.1:1"}]}]})",
      })) ==
      Lines{
          "molt.json:2:21: backends[0].check.type: expected one of \"tcp\", \"http\" (did you "
          "mean \"tcp\"?)",
          "molt.json:2:38: backends[0].check.status: status range reversed: 399 > 200",
          "molt.json:2:59: backends[0].check.method: expected an HTTP method like \"GET\"",
          "molt.json:2:74: backends[0].check.path: must start with '/'",
          "molt.json:2:87: backends[0].check.rise: must be between 1 and 100",
          "molt.json:3:25: backends[0].check.interval: must be greater than 0",
          "molt.json:3:42: backends[0].check.timeout: unknown unit 'x' (ms, s, m, h)",
          "molt.json:4:14: backends[0].servers: a backend with 'deny' must have no servers",
          "molt.json:4:64: backends[0].servers[0].check: expected a boolean or an object",
          "molt.json:4:81: backends[0].servers[0].weight: must be between 0 and 256",
          "molt.json:5:36: backends[1].check.status: must be between 100 and 599",
          "molt.json:6:9: backends[1].servers[0].to: template expands to 1000001 servers; at most "
          "1000000",
          "molt.json:6:44: backends[1].servers[0].name: unknown key 'name'",
          "molt.json:6:58: backends[1].servers[1]: missing required key 'from'",
          "molt.json:6:58: backends[1].servers[1]: missing required key 'to'",
      });
}

TEST_CASE("global, tls and name values are range-checked", "[config]") {
  CHECK(
      errors(text({
          R"({"global": {"workers": 0, "user": "no-such-user-molt", "group": "", "max_old_generations": 1001,)",
          R"(  "log_format": "jsn", "state_file": 3},)",
          R"( "tls": {"session_cache": "65GB", "min_version": "TLSv1.1"},)",
          R"( "frontends": [{"name": "a b", "bind": ["127.0.0.1:0"], "timeouts": {"client": "-1s"}}]})",
      })) ==
      Lines{
          "molt.json:1:24: global.workers: must be between 1 and 1024",
          "molt.json:1:35: global.user: unknown user 'no-such-user-molt'",
          "molt.json:1:65: global.group: must not be empty",
          "molt.json:1:92: global.max_old_generations: must be between 0 and 1000",
          "molt.json:2:17: global.log_format: expected one of \"text\", \"json\" (did you mean "
          "\"json\"?)",
          "molt.json:2:38: global.state_file: expected a string",
          "molt.json:3:27: tls.session_cache: must be at most 64GB",
          "molt.json:3:50: tls.min_version: expected one of \"TLSv1.2\", \"TLSv1.3\" (did you mean "
          "\"TLSv1.2\"?)",
          "molt.json:4:25: frontends[0].name: bad name 'a b': use letters, digits, '_', '.', '-'",
          "molt.json:4:80: frontends[0].timeouts.client: must not be negative",
      });
}

TEST_CASE("required keys are reported at their object", "[config]") {
  CHECK(errors(R"({"frontends": [{}], "backends": [{"servers": [{}]}, 3]})") ==
        Lines{
            "molt.json:1:16: frontends[0]: missing required key 'name'",
            "molt.json:1:16: frontends[0]: missing required key 'bind'",
            "molt.json:1:34: backends[0]: missing required key 'name'",
            "molt.json:1:47: backends[0].servers[0]: missing required key 'name'",
            "molt.json:1:47: backends[0].servers[0]: missing required key 'address'",
            "molt.json:1:53: backends[1]: expected an object",
        });
}

TEST_CASE("a top level that is not an object is one error", "[config]") {
  CHECK(errors("[]") == Lines{"molt.json:1:1: the top level must be an object"});
}

TEST_CASE("an unreadable config file is one error without a position", "[config]") {
  try {
    loadConfigFile("/nonexistent/molt.json");
    FAIL("no error");
  } catch (const ConfigErrors& e) {
    REQUIRE(e.errors().size() == 1);
    CHECK(e.errors()[0].str() == "/nonexistent/molt.json: cannot read: No such file or directory");
    CHECK(std::string(e.what()) == e.errors()[0].str());
  }
}

TEST_CASE("loadConfigFile reads the file through the FileSource", "[config]") {
  MemoryFiles files;
  files.files["/etc/molt.json"] = R"({"global": {"workers": 5}})";
  Config c = loadConfigFile("/etc/molt.json", files.source());
  CHECK(c.fileName == "/etc/molt.json");
  CHECK(c.global.workers == 5);
  CHECK(c.sideFiles.empty());
}

TEST_CASE("ConfigErrors prints one error a line", "[config]") {
  ConfigErrors e({ConfigError{"f.json", 1, 2, "a.b", "bad"},
                  ConfigError{"f.json", 3, 4, "", "worse"},
                  ConfigError{"f.json", 0, 0, "c", "no position"}});
  CHECK(std::string(e.what()) == "f.json:1:2: a.b: bad\nf.json:3:4: worse\nf.json: c: no position");
}

TEST_CASE("a FileSource that throws still yields ConfigErrors", "[config]") {
  FileSource throwing;
  throwing.read = [](const std::string&, std::string&) -> std::optional<std::string> {
    throw std::runtime_error("boom");
  };
  throwing.list = [](const std::string&, std::string&) -> std::optional<std::vector<std::string>> {
    throw std::runtime_error("boom");
  };
  CHECK_THROWS_AS(parseConfig(R"({"frontends": [{"name": "f", "bind": ["127.0.0.1:0"],
      "certificates": ["/c"]}]})",
                              "molt.json", throwing),
                  ConfigErrors);
}

TEST_CASE("the disk FileSource reads files and lists the regular files of a directory, sorted",
          "[config]") {
  char dir[] = "/tmp/molt-config-test-XXXXXX";
  REQUIRE(mkdtemp(dir));
  std::string base = dir;
  for (const char* name : {"b.pem", "a.pem"}) {
    FILE* f = std::fopen((base + "/" + name).c_str(), "w");
    REQUIRE(f);
    std::fputs(name, f);
    std::fclose(f);
  }
  REQUIRE(::mkdir((base + "/sub").c_str(), 0700) == 0);
  REQUIRE(::symlink("a.pem", (base + "/.hidden").c_str()) == 0);
  REQUIRE(::symlink("b.pem", (base + "/link.pem").c_str()) == 0);
  FileSource disk = FileSource::disk();
  std::string error;
  CHECK(disk.list(base, error) == std::vector<std::string>{"a.pem", "b.pem", "link.pem"});
  CHECK(disk.read(base + "/a.pem", error) == std::string("a.pem"));
  CHECK_FALSE(disk.read(base, error));
  CHECK(error == "Is a directory");
  CHECK_FALSE(disk.list(base + "/a.pem", error));
  CHECK(error == "Not a directory");
  CHECK_FALSE(disk.read(base + "/none", error));
  CHECK(error == "No such file or directory");
  for (const char* name : {"/a.pem", "/b.pem", "/.hidden", "/link.pem"}) {
    ::unlink((base + name).c_str());
  }
  ::rmdir((base + "/sub").c_str());
  ::rmdir(dir);
}

TEST_CASE("a template of 100k servers parses well under a second", "[config][perf]") {
  auto start = std::chrono::steady_clock::now();
  Config c = parse(R"({"backends": [{"name": "b", "check": {"type": "tcp"}, "servers": [
      {"name": "first", "address": "127.0.0.1:1"},
      {"template": "srv", "from": 1, "to": 100000, "address": "localhost:8080", "check": {"rise": 3}}]}]})");
  auto elapsed = std::chrono::steady_clock::now() - start;
  const auto& servers = c.backends[0].servers;
  REQUIRE(servers.size() == 100001);
  CHECK(servers[1].name == "srv1");
  CHECK(servers[100000].name == "srv100000");
  CHECK(servers[100000].address.text() == "127.0.0.1:8080");
  CHECK(servers[100000].checkOverride->rise == 3);
  CHECK(elapsed < 500ms);
}

TEST_CASE("a template of a million servers parses", "[.][config][perf]") {
  auto start = std::chrono::steady_clock::now();
  Config c = parse(R"({"backends": [{"name": "b", "servers": [
      {"template": "srv", "from": 0, "to": 999999, "address": "127.0.0.1:8080"}]}]})");
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(c.backends[0].servers.size() == 1000000);
  CHECK(elapsed < 2s);
}

TEST_CASE("a declared server costs under 100 bytes in the config model", "[config][memory]") {
  // Guards the per-server budget: a million template servers must not cost a gigabyte.
  STATIC_REQUIRE(sizeof(molt::common::SocketAddress) <= 32);
  STATIC_REQUIRE(sizeof(molt::common::ServerConfig) <= 96);
}
