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

TEST_CASE("a frontend's access_log format is checked where it is written", "[config]") {
  CHECK(
      errors(text({
          R"({"frontends": [{"name": "a", "bind": ["127.0.0.1:0"], "access_log": {"format": "xml"}},)",
          R"(  {"name": "b", "mode": "tcp", "bind": ["127.0.0.1:0"], "default_backend": "k",)",
          R"(   "access_log": {"format": "json", "path": "/x"}}],)",
          R"( "backends": [{"name": "k", "servers": [{"name": "s", "address": "127.0.0.1:1"}]}]})",
      })) == Lines{
                 "molt.json:1:80: frontends[0].access_log.format: expected one of \"text\", "
                 "\"json\"",
                 "molt.json:3:18: frontends[1].access_log: needs mode http",
                 "molt.json:3:37: frontends[1].access_log.path: unknown key 'path'",
             });
}

TEST_CASE("global.metrics is a bind address; names have a length limit", "[config]") {
  CHECK(errors(text({
            R"({"global": {"metrics": "127.0.0.1:70000"},)",
            R"( "frontends": [{"name": "f", "bind": ["127.0.0.1:1"], "default_backend": "b"}],)",
            R"( "backends": [{"name": ")" + std::string(201, 'b') + R"(", "servers": []}]})",
        })) == Lines{"molt.json:1:24: global.metrics: port out of range",
                     "molt.json:2:74: frontends[0].default_backend: unknown backend 'b'",
                     "molt.json:3:24: backends[0].name: name of 201 characters: at most 200"});
  CHECK(
      errors(text({R"({"global": {"metrics": 9100},)", R"( "frontends": [], "backends": []})"})) ==
      Lines{"molt.json:1:24: global.metrics: expected a string"});
}

TEST_CASE("fleet settings are checked: the redis address, the prefix, the password file",
          "[config][fleet]") {
  CHECK(errors(text({
            R"({"fleet": {"redis": "127.0.0.1:99999", "prefix": "has space",)",
            R"(  "password_file": "/nonexistent/redis.pass", "lookup_timeout": "5s"}})",
        })) == Lines{"molt.json:1:21: fleet.redis: port out of range",
                     "molt.json:1:50: fleet.prefix: must be 1 to 100 printable characters "
                     "without spaces",
                     "molt.json:2:20: fleet.password_file: /nonexistent/redis.pass: No such file "
                     "or directory",
                     "molt.json:2:65: fleet.lookup_timeout: at most \"1s\": every resuming "
                     "handshake may wait this long"});
  CHECK(errors(text({R"({"fleet": {"prefix": "m:"}})"})) ==
        Lines{"molt.json:1:11: fleet: missing required key 'redis'"});
  CHECK(errors(text({R"({"fleet": {"redis": "unix:relative"}})"})) ==
        Lines{"molt.json:1:21: fleet.redis: a unix socket must be an absolute path "
              "(\"unix:/run/redis/redis.sock\")"});
}
