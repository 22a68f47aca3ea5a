// End-to-end: the runtime API's change commands (issue: runtime API). Servers, backends, host-map
// entries and certificates changed without a reload, in every worker, surviving reload, binary
// upgrade and (state_file) a restart.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "tests/integration/http_client.hpp"
#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"
#include "tests/support/tls_client.hpp"

using namespace molt::test;
using nlohmann::json;

namespace {

// A frontend "www" (plain http, host map) and "tls" (https), one backend bk_a on origin `a`.
struct Setup {
  Origin a{"a"}, b{"b"};
  TempDir dir;
  std::string socket = dir.path() + "/api.sock";
  std::string stateFile = dir.path() + "/state.jsonl";

  std::string config(const std::string& extraServers = "") const {
    return R"({"global": {"workers": 2, "api_socket": ")" + socket + R"(", "state_file": ")" +
           stateFile + R"("},
      "frontends": [{"name": "www", "mode": "http", "bind": ["127.0.0.1:0"],
                     "routes": [{"host_map": ")" +
           dir.path() + R"(/hosts.map", "backend_prefix": "bk_"}], "default_backend": "bk_a"},
                    {"name": "tls", "mode": "http", "bind": [{"address": "127.0.0.1:0", "tls": true}],
                     "certificates": [")" +
           dir.path() + R"(/file.pem"], "default_backend": "bk_a"}],
      "backends": [{"name": "bk_a", "servers": [{"name": "s0", "address": "127.0.0.1:)" +
           std::to_string(a.httpPort()) + "\"}" + extraServers + "]}]}";
  }
  Setup() {
    dir.write("hosts.map", "a.example.com a\n");
    REQUIRE(makeCertificate(dir.path() + "/file.pem", "file.example.com"));
  }
  std::string origin(const std::string& name) const {
    return name == "a" ? "127.0.0.1:" + std::to_string(a.httpPort())
                       : "127.0.0.1:" + std::to_string(b.httpPort());
  }
};

void requireOk(const json& answer) {
  INFO(answer.dump());
  REQUIRE(answer.is_object());
  REQUIRE(answer["ok"] == true);
}

std::string originOf(std::uint16_t port, const std::string& host) {
  Response r = request(port, "/", host);
  return r.status == 200 ? r.header("x-origin") : "status " + std::to_string(r.status);
}

std::string certificateName(std::uint16_t port, const std::string& sni) {
  TlsClient client(port, {sni});
  return client.connected() ? client.peerCommonName() : "no handshake: " + client.error();
}

// Distinct srv= names in the access-log lines worker `pid` wrote since line `from`.
std::set<std::string> serversUsedBy(Child& molt, pid_t pid, size_t from) {
  std::set<std::string> names;
  std::regex re("molt\\[" + std::to_string(pid) + R"(\] .* access fe=www be=bk_a srv=(\S+))");
  auto lines = molt.lines();
  for (size_t i = from; i < lines.size(); ++i) {
    std::smatch m;
    if (std::regex_search(lines[i], m, re)) names.insert(m[1]);
  }
  return names;
}

}  // namespace

TEST_CASE("1000 servers added at runtime take traffic in every worker", "[changes][integration]") {
  Setup s;
  Molt molt(s.config());
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  std::uint16_t port = molt.port("www");
  for (int i = 1; i <= 1000; ++i) {
    json r = askApiJson(
        s.socket, {{"cmd", "server.add"},
                   {"backend", "bk_a"},
                   {"server", {{"name", "rt" + std::to_string(i)}, {"address", s.origin("b")}}}});
    requireOk(r);
  }
  requireOk(askApiJson(
      s.socket,
      {{"cmd", "server.set"}, {"backend", "bk_a"}, {"server", "s0"}, {"state", "maint"}}));
  // Each worker in turn (the other stopped, so the kernel hands it every connection).
  auto workers = molt.workerPids(1);
  REQUIRE(workers.size() == 2);
  for (int w = 0; w < 2; ++w) {
    pid_t serving = workers[static_cast<size_t>(w)], stopped = workers[static_cast<size_t>(1 - w)];
    size_t from = molt.process().lines().size();
    kill(stopped, SIGSTOP);
    for (int i = 0; i < 20; ++i) REQUIRE(originOf(port, "any.example.com") == "b");
    kill(stopped, SIGCONT);
    // Round robin over the added servers: 20 requests, 20 different servers.
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (serversUsedBy(molt.process(), serving, from).size() < 20 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(50ms);
    auto used = serversUsedBy(molt.process(), serving, from);
    INFO("worker " << serving);
    REQUIRE(used.size() == 20);
    for (const auto& name : used) REQUIRE(name.rfind("rt", 0) == 0);
  }
  json listed = askApiJson(s.socket, {{"cmd", "servers"}, {"backend", "bk_a"}});
  REQUIRE(listed["servers"].size() == 1001);
}

TEST_CASE("server.del waits for the server's connections, or refuses with the reason",
          "[changes][integration]") {
  Setup s;
  Molt molt(s.config(R"(, {"name": "s1", "address": ")" + s.origin("b") + R"("})"));
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  std::uint16_t port = molt.port("www");
  requireOk(askApiJson(
      s.socket,
      {{"cmd", "server.set"}, {"backend", "bk_a"}, {"server", "s0"}, {"state", "maint"}}));
  auto ws = openWebSocket(port, "/ws", "any.example.com");  // through s1, the only one ready
  REQUIRE(ws);
  REQUIRE(webSocketEcho(ws.get(), "held") == "held");
  json refused = askApiJson(
      s.socket,
      {{"cmd", "server.del"}, {"backend", "bk_a"}, {"server", "s1"}, {"timeout_ms", 300}});
  INFO(refused.dump());
  REQUIRE(refused["ok"] == false);
  REQUIRE(refused["error"].get<std::string>().find("still has 1 connection") != std::string::npos);
  // Left draining: no new traffic, the live connection untouched.
  json listed = askApiJson(s.socket, {{"cmd", "servers"}, {"backend", "bk_a"}});
  REQUIRE(listed["servers"][1]["state"] == "drain");
  REQUIRE(request(port, "/", "any.example.com").status == 503);
  REQUIRE(webSocketEcho(ws.get(), "still") == "still");
  // Deleted once the connection ends, within the default wait.
  std::thread closer([&] {
    std::this_thread::sleep_for(300ms);
    ws.reset();
  });
  json deleted =
      askApiJson(s.socket, {{"cmd", "server.del"}, {"backend", "bk_a"}, {"server", "s1"}});
  closer.join();
  requireOk(deleted);
  listed = askApiJson(s.socket, {{"cmd", "servers"}, {"backend", "bk_a"}});
  REQUIRE(listed["servers"].size() == 1);
}

TEST_CASE(
    "backends, host-map entries and certificates change at runtime and survive reload, "
    "binary upgrade and restart",
    "[changes][integration][upgrade]") {
  Setup s;
  REQUIRE(makeCertificate(s.dir.path() + "/runtime.pem", "new.example.com"));
  std::string ctl = molt::test::moltBinary();
  {
    Molt molt(s.config());
    REQUIRE_LINE(molt.process(), "api: listening on", 10s);
    std::uint16_t www = molt.port("www"), tls = molt.port("tls");
    REQUIRE(originOf(www, "new.example.com") == "a");  // default backend
    REQUIRE(certificateName(tls, "new.example.com") == "file.example.com");

    // Through molt ctl, as an operator would.
    auto run = [&](const std::string& args) {
      return std::system((ctl + " ctl -s " + s.socket + " " + args + " >/dev/null").c_str());
    };
    REQUIRE(
        run(R"(backend.add 'backend={"name": "bk_new", "servers": [{"name": "n1", "address": ")" +
            s.origin("b") + R"("}]}')") == 0);
    REQUIRE(run("map.set www New.Example.com new") == 0);
    REQUIRE(run("cert.set tls " + s.dir.path() + "/runtime.pem") == 0);
    REQUIRE(run("map.set www other.example.com missing") != 0);  // no backend bk_missing
    REQUIRE(originOf(www, "new.example.com") == "b");
    REQUIRE(originOf(www, "a.example.com") == "a");
    REQUIRE(certificateName(tls, "new.example.com") == "new.example.com");
    REQUIRE(certificateName(tls, "file.example.com") == "file.example.com");

    // Reload: the file does not have them; the journal brings them back.
    json reloaded = askApiJson(s.socket, {{"cmd", "reload"}});
    requireOk(reloaded);
    REQUIRE(originOf(molt.port("www", 2), "new.example.com") == "b");
    REQUIRE(certificateName(molt.port("tls", 2), "new.example.com") == "new.example.com");

    // Binary upgrade (forced re-exec of the same file), then its reload.
    REQUIRE_LINE(molt.process(), "generation 1 gone", 10s);
    size_t from = molt.process().lines().size();
    requireOk(askApiJson(s.socket, {{"cmd", "upgrade"}}));
    REQUIRE_LINE(molt.process(), "generation 3 serving", 20s, from);
    REQUIRE(originOf(molt.port("www", 3), "new.example.com") == "b");
    REQUIRE(certificateName(molt.port("tls", 3), "new.example.com") == "new.example.com");
    molt.process().signal(SIGTERM);
    auto exited = molt.process().waitExit(15s);
    INFO(molt.process().output());
    REQUIRE(exited);
  }
  // A full restart: global.state_file kept the journal (mode 0600: it holds a private key).
  struct stat st {};
  REQUIRE(stat(s.stateFile.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 0777) == 0600);
  Molt again(s.config());
  REQUIRE_LINE(again.process(), "api: listening on", 10s);
  REQUIRE(originOf(again.port("www"), "new.example.com") == "b");
  REQUIRE(certificateName(again.port("tls"), "new.example.com") == "new.example.com");

  // cert.del and backend.del (refused while a map entry points at it, then allowed).
  requireOk(askApiJson(
      s.socket,
      {{"cmd", "cert.del"}, {"frontend", "tls"}, {"name", s.dir.path() + "/runtime.pem"}}));
  REQUIRE(certificateName(again.port("tls"), "new.example.com") == "file.example.com");
  json inUse = askApiJson(s.socket, {{"cmd", "backend.del"}, {"backend", "bk_new"}});
  REQUIRE(inUse["ok"] == false);
  REQUIRE(inUse["error"].get<std::string>().find("new.example.com") != std::string::npos);
  requireOk(
      askApiJson(s.socket, {{"cmd", "map.del"}, {"frontend", "www"}, {"host", "new.example.com"}}));
  requireOk(askApiJson(s.socket, {{"cmd", "backend.del"}, {"backend", "bk_new"}}));
  REQUIRE(originOf(again.port("www"), "new.example.com") == "a");
}

TEST_CASE("a journalled change the new file conflicts with is dropped and reported by errors",
          "[changes][integration]") {
  Setup s;
  Molt molt(s.config());
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  requireOk(askApiJson(s.socket, {{"cmd", "server.add"},
                                  {"backend", "bk_a"},
                                  {"server", {{"name", "s1"}, {"address", s.origin("b")}}}}));
  // The file now declares s1 itself: the runtime add no longer applies.
  molt.rewriteConfig(s.config(R"(, {"name": "s1", "address": ")" + s.origin("a") + R"("})"));
  requireOk(askApiJson(s.socket, {{"cmd", "reload"}}));
  json errors = askApiJson(s.socket, {{"cmd", "errors"}});
  INFO(errors.dump());
  REQUIRE(errors["errors"].size() == 1);
  REQUIRE(errors["errors"][0].get<std::string>().find("server.add bk_a s1") != std::string::npos);
  json listed = askApiJson(s.socket, {{"cmd", "servers"}, {"backend", "bk_a"}});
  REQUIRE(listed["servers"][1]["address"] == s.origin("a"));  // the file's
}

TEST_CASE("malformed change requests get an error naming the field and change nothing",
          "[changes][integration]") {
  Setup s;
  Molt molt(s.config());
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  const std::pair<json, std::string> cases[] = {
      {{{"cmd", "server.add"},
        {"backend", "bk_x"},
        {"server", {{"name", "n"}, {"address", "127.0.0.1:1"}}}},
       "backend"},
      {{{"cmd", "server.add"},
        {"backend", "bk_a"},
        {"server", {{"name", "n"}, {"address", "127.0.0.1:99999"}}}},
       "server.address"},
      {{{"cmd", "server.add"},
        {"backend", "bk_a"},
        {"server", {{"name", "s0"}, {"address", "127.0.0.1:1"}}}},
       "s0"},
      {{{"cmd", "server.set"}, {"backend", "bk_a"}, {"server", "s0"}, {"weight", "heavy"}},
       "weight"},
      {{{"cmd", "server.set"}, {"backend", "bk_a"}, {"server", "s0"}, {"state", "sleeping"}},
       "state"},
      {{{"cmd", "server.del"}, {"backend", "bk_a"}, {"server", "nobody"}}, "nobody"},
      {{{"cmd", "backend.add"}, {"backend", {{"name", "bk_a"}, {"servers", json::array()}}}},
       "bk_a"},
      {{{"cmd", "backend.del"}, {"backend", "bk_a"}}, "default_backend"},
      {{{"cmd", "cert.set"}, {"frontend", "tls"}, {"name", "x"}, {"pem", "not a certificate"}},
       "pem"},
      {{{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "x"}, {"pem", "x"}}, "frontend"},
      {{{"cmd", "map.set"}, {"frontend", "tls"}, {"host", "h.example.com"}, {"value", "a"}},
       "host_map"},
      {{{"cmd", "map.del"}, {"frontend", "www"}, {"host", "nowhere.example.com"}}, "nowhere"},
  };
  for (const auto& [request, mention] : cases) {
    json r = askApiJson(s.socket, request);
    INFO(request.dump() << " -> " << r.dump());
    REQUIRE(r["ok"] == false);
    REQUIRE(r["error"].get<std::string>().find(mention) != std::string::npos);
  }
  json listed = askApiJson(s.socket, {{"cmd", "servers"}});
  REQUIRE(listed["servers"].size() == 1);
  REQUIRE(listed["servers"][0]["weight"] == 1);
  std::ifstream state(s.stateFile);
  REQUIRE_FALSE(state.good());  // nothing was applied, nothing journalled
  REQUIRE(originOf(molt.port("www"), "a.example.com") == "a");
}

TEST_CASE("a server added at runtime with a check is checked by the master",
          "[changes][integration][health]") {
  Setup s;
  Molt molt(s.config());
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  std::uint16_t closed = unusedPort();
  requireOk(
      askApiJson(s.socket, {{"cmd", "server.add"},
                            {"backend", "bk_a"},
                            {"server",
                             {{"name", "checked"},
                              {"address", "127.0.0.1:" + std::to_string(closed)},
                              {"check", {{"type", "tcp"}, {"interval", "100ms"}, {"fall", 1}}}}}}));
  REQUIRE_LINE(molt.process(), "backend bk_a server checked is DOWN", 10s);
  json listed = askApiJson(s.socket, {{"cmd", "servers"}, {"backend", "bk_a"}});
  REQUIRE(listed["servers"][1]["check"] == "down");
  // Traffic keeps going to the healthy one.
  for (int i = 0; i < 10; ++i) REQUIRE(originOf(molt.port("www"), "x.example.com") == "a");
}
