// End-to-end: health checks run by the master, seen by workers through the server-state zone
// (issue: backends at scale).
#include <signal.h>

#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "tests/integration/http_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;

namespace {

std::string config(const std::string& check, const std::string& servers) {
  return R"({"global": {"workers": 2},
    "frontends": [{"name": "fe", "mode": "http", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "check": )" +
         check + R"(, "servers": [)" + servers + R"(]}]})";
}

std::string server(const std::string& name, std::uint16_t port, const std::string& extra = "") {
  return R"({"name": ")" + name + R"(", "address": "127.0.0.1:)" + std::to_string(port) + "\"" +
         extra + "}";
}

const std::string kHttpCheck =
    R"({"type": "http", "path": "/", "interval": "100ms", "timeout": "500ms", "rise": 2, "fall": 2})";

// Which origins answered `count` requests through the proxy (by their body, "NAME\n").
std::multiset<std::string> answers(std::uint16_t port, int count) {
  std::multiset<std::string> seen;
  for (int i = 0; i < count; ++i) seen.insert(request(port, "/").body);
  return seen;
}

}  // namespace

TEST_CASE("a server failing its checks gets no traffic until it passes rise checks",
          "[health][integration]") {
  Origin a("a");
  auto b = std::make_unique<Origin>("b");
  std::uint16_t bPort = b->httpPort();
  Molt molt(config(kHttpCheck, server("a", a.httpPort()) + ", " + server("b", bPort)));
  std::uint16_t port = molt.port("fe");
  REQUIRE(answers(port, 20).count("b\n") > 0);

  b.reset();  // the origin dies
  REQUIRE_LINE(molt.process(), "backend be server b is DOWN \\(connection refused", 10s);
  auto during = answers(port, 20);
  REQUIRE(during.count("a\n") == 20);

  b = std::make_unique<Origin>("b", bPort);  // back on the same port
  REQUIRE_LINE(molt.process(), "backend be server b is UP \\(status 200", 10s);
  REQUIRE(answers(port, 20).count("b\n") > 0);
}

TEST_CASE("a down server stays down in the next generation until it rises",
          "[health][integration]") {
  Origin a("a");
  std::uint16_t deadPort = unusedPort();
  Molt molt(config(kHttpCheck, server("a", a.httpPort()) + ", " + server("b", deadPort)));
  REQUIRE_LINE(molt.process(), "backend be server b is DOWN", 10s);
  size_t from = molt.process().lines().size();
  molt.process().signal(SIGUSR2);
  REQUIRE_LINE(molt.process(), "generation 2 serving", 20s, from);
  // The new generation's workers never saw a check yet, and still send nothing to b.
  auto seen = answers(molt.port("fe", 2), 20);
  REQUIRE(seen.count("a\n") == 20);
  REQUIRE_FALSE(molt.process().waitForLine("server b is UP", std::chrono::milliseconds(300), from));
}

TEST_CASE("disabled servers and servers with check false are never checked",
          "[health][integration]") {
  Origin a("a"), disabled("disabled"), unchecked("unchecked");
  Molt molt(config(kHttpCheck, server("a", a.httpPort()) + ", " +
                                   server("d", disabled.httpPort(), R"(, "disabled": true)") +
                                   ", " +
                                   server("u", unchecked.httpPort(), R"(, "check": false)")));
  std::uint16_t port = molt.port("fe");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // several check intervals
  REQUIRE(originConnections(disabled.httpPort()) == 1);         // only the /stats request itself
  REQUIRE(originConnections(unchecked.httpPort()) == 1);
  REQUIRE(originConnections(a.httpPort()) > 3);  // checked every 100 ms
  auto seen = answers(port, 20);
  REQUIRE(seen.count("disabled\n") == 0);
}

TEST_CASE("a tcp check marks a refusing server down", "[health][integration]") {
  Origin a("a");
  Molt molt(config(R"({"type": "tcp", "interval": "100ms", "fall": 1})",
                   server("a", a.httpPort()) + ", " + server("gone", unusedPort())));
  REQUIRE_LINE(molt.process(), "backend be server gone is DOWN \\(connection refused", 10s);
  REQUIRE(answers(molt.port("fe"), 10).count("a\n") == 10);
  REQUIRE_FALSE(molt.process().waitForLine("server a is DOWN", std::chrono::milliseconds(0)));
}

namespace {

// Connections open at an origin now, not counting the one that asks.
int openAt(std::uint16_t originPort) {
  std::string response = httpGet(originPort, "/stats");
  auto at = response.find("\"connections_open\":");
  if (at == std::string::npos) return -1;
  return std::stoi(response.substr(at + 19)) - 1;
}

}  // namespace

TEST_CASE("leastconn counts connections across workers", "[health][integration][balance]") {
  Origin a("a"), b("b");
  std::string text = R"({"global": {"workers": 2},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "balance": "leastconn", "servers": [)" +
                     server("a", a.httpPort()) + ", " + server("b", b.httpPort()) + "]}]}";
  Molt molt(text);
  std::uint16_t port = molt.port("fe");
  auto workers = molt.workerPids(1);
  REQUIRE(workers.size() == 2);
  std::vector<molt::common::UniqueFd> held;
  auto openOne = [&](int expectedTotal) {
    held.push_back(connectTo(port));
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (openAt(a.httpPort()) + openAt(b.httpPort()) < expectedTotal &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
  };
  // Three connections through worker 0 only, then one through worker 1 only: worker 1 has
  // made no connection itself, so only the shared counts can tell it which server is lighter.
  kill(workers[1], SIGSTOP);
  for (int i = 1; i <= 3; ++i) openOne(i);
  kill(workers[1], SIGCONT);
  kill(workers[0], SIGSTOP);
  openOne(4);
  kill(workers[0], SIGCONT);
  REQUIRE(openAt(a.httpPort()) == 2);
  REQUIRE(openAt(b.httpPort()) == 2);
}
