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

TEST_CASE("loadConfigFile reads the file through the FileSource", "[config]") {
  MemoryFiles files;
  files.files["/etc/molt.json"] = R"({"global": {"workers": 5}})";
  Config c = loadConfigFile("/etc/molt.json", files.source());
  CHECK(c.fileName == "/etc/molt.json");
  CHECK(c.global.workers == 5);
  CHECK(c.sideFiles.empty());
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

// The bound only catches a quadratic expansion (minutes): the parse takes ~50 ms optimised, ~0.5 s
// in the sanitizer build, on a loaded 2-core machine.
TEST_CASE("a template of 100k servers parses in linear time", "[config][perf]") {
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
  CHECK(elapsed < 10s);
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
