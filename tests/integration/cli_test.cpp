// End-to-end: molt's command line (-c, --version, start-up failures).
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;

TEST_CASE("molt --version names molt, libuv and OpenSSL", "[cli][integration]") {
  Child child({moltBinary(), "--version"});
  auto status = child.waitExit();
  REQUIRE(status);
  REQUIRE(WEXITSTATUS(*status) == 0);
  REQUIRE_LINE(child, R"(^molt \S+ \(libuv 1\.\d+\.\d+, OpenSSL 3\.)", 2s);
}

TEST_CASE("molt -c lists every config error as FILE:LINE:COL: path: message and exits 1",
          "[cli][integration][config]") {
  TempDir dir;
  std::string path = dir.write("bad.json", R"({
  "global": {"workers": 2},
  "frontends": [{"name": "fe", "mode": "tcp", "bind": ["127.0.0.1:99999"],
                 "default_backend": "nope"}],
  "backends": [{"name": "be", "servers": [
    {"template": "s", "from": 9, "to": 3, "address": "127.0.0.1:80"}]}]
})");
  Child child({moltBinary(), "-c", "-f", path});
  auto status = child.waitExit();
  REQUIRE(status);
  REQUIRE(WEXITSTATUS(*status) == 1);
  INFO(child.output());
  REQUIRE_LINE(child, path + R"(:3:\d+: frontends\[0\]\.bind\[0\].*port out of range)", 2s);
  REQUIRE_LINE(child, path + R"(:4:\d+: frontends\[0\]\.default_backend: .*nope)", 2s);
  REQUIRE_LINE(child, path + R"(:6:\d+: backends\[0\]\.servers\[0\].*reversed)", 2s);
}

TEST_CASE("molt -c accepts a valid config", "[cli][integration][config]") {
  TempDir dir;
  std::string path = dir.write("ok.json", R"({"frontends": [{"name": "fe", "mode": "tcp",
    "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "a", "address": "127.0.0.1:1"}]}]})");
  Child child({moltBinary(), "-c", "-f", path});
  auto status = child.waitExit();
  REQUIRE(status);
  REQUIRE(WEXITSTATUS(*status) == 0);
}

TEST_CASE("molt refuses to start when a listener cannot be bound, naming the bind",
          "[cli][integration]") {
  TempDir dir;
  Origin origin;  // its HTTP port is taken
  std::string path = dir.write(
      "busy.json", R"({"global": {"workers": 1}, "frontends": [{"name": "fe",
    "mode": "tcp", "bind": ["127.0.0.1:)" +
                       std::to_string(origin.httpPort()) + R"("], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "a", "address": "127.0.0.1:1"}]}]})");
  Child child({moltBinary(), "-f", path});
  auto status = child.waitExit();
  REQUIRE(status);
  REQUIRE(WEXITSTATUS(*status) == 1);
  REQUIRE_LINE(
      child, R"(frontends\[0\]\.bind\[0\]: bind\(127\.0\.0\.1:\d+\): Address already in use)", 2s);
}
