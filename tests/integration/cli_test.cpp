// End-to-end: molt's command line (-c, --version, start-up failures).
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>

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

namespace {

// A file of the source tree (meson passes its root as MOLT_SOURCE).
std::string sourceFile(const std::string& relative) {
  const char* root = std::getenv("MOLT_SOURCE");
  REQUIRE(root != nullptr);
  return std::string(root) + "/" + relative;
}

}  // namespace

TEST_CASE("the config the package ships passes molt -c", "[cli][integration][package]") {
  // The package creates the `molt` user; here the workers' user is one every system has.
  std::ifstream in(sourceFile("packaging/molt.json"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto at = text.find(R"("user": "molt")");
  REQUIRE(at != std::string::npos);
  text.replace(at, 14, R"("user": "nobody")");
  TempDir dir;
  Child child({moltBinary(), "-c", "-f", dir.write("molt.json", text)});
  auto status = child.waitExit();
  REQUIRE(status);
  INFO(child.output());
  REQUIRE(WEXITSTATUS(*status) == 0);
  REQUIRE_LINE(child, R"(configuration OK \(1 frontends, 1 backends\))", 2s);
}

TEST_CASE("bash completion offers molt ctl's commands and the running instance's names",
          "[cli][integration][package]") {
  Origin origin;
  TempDir dir;
  const std::string socket = dir.path() + "/api.sock";
  Molt molt(R"({"global": {"workers": 1, "api_socket": ")" + socket + R"("},
    "frontends": [{"name": "www", "mode": "http", "bind": ["127.0.0.1:0"],
                   "default_backend": "app"}],
    "backends": [{"name": "app", "servers": [
                   {"name": "app1", "address": "127.0.0.1:)" +
            std::to_string(origin.httpPort()) + R"("},
                   {"name": "app2", "address": "127.0.0.1:)" +
            std::to_string(origin.httpPort()) + R"("}]},
                 {"name": "api", "servers": [{"name": "api1", "address": "127.0.0.1:1"}]}]})");
  // Each line: the words typed (the last one being completed), as COMP_WORDS.
  auto complete = [&](const std::string& words) {
    std::string script =
        "source '" + sourceFile("packaging/molt.bash-completion") + "'; COMP_WORDS=(" + words +
        "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _molt; echo \"${COMPREPLY[*]}\"";
    Child child({"/bin/bash", "-c", script});
    auto status = child.waitExit();
    REQUIRE(status);
    REQUIRE(WEXITSTATUS(*status) == 0);
    std::string out = child.output();
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  };
  const std::string molt_ = "'" + moltBinary() + "'";
  CHECK(complete(molt_ + " ctl ser") == "servers server.add server.del server.set");
  CHECK(complete(molt_ + " ctl -s " + socket + " servers ''") == "api app");
  CHECK(complete(molt_ + " ctl -s " + socket + " server.del app ''") == "app1 app2");
  CHECK(complete(molt_ + " ctl -s " + socket + " server.set api a") == "api1");
  CHECK(complete(molt_ + " ctl -s " + socket + " map.set ''") == "www");
  CHECK(complete(molt_ + " ctl -s " + socket + " server.set app app1 st") ==
        "state=ready state=drain state=maint");
  // No master there: nothing offered, and nothing printed but the (empty) answer.
  CHECK(complete(molt_ + " ctl -s " + dir.path() + "/none.sock servers ''") == "");
}
