// End-to-end: idle keep-alive connections parked as a bare descriptor (worker/net/parking.hpp),
// served again when their client speaks, closed at their keep-alive time, and carried through
// reloads (issue 20).
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "tests/integration/http_client.hpp"
#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;
using nlohmann::json;

namespace {

std::string parkingConfig(std::uint16_t originPort, const std::string& socket,
                          const std::string& keepAlive, const std::string& global = "") {
  return R"({"global": {"workers": 1, "hard_stop_after": "20s", "api_socket": ")" + socket +
         R"(")" + global + R"(},
    "frontends": [{"name": "fe", "mode": "http", "bind": ["127.0.0.1:0"],
                   "timeouts": {"keep_alive": ")" +
         keepAlive + R"("}, "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(originPort) + R"("}]}]})";
}

// The serving generation's worker: its connections and how many of them are parked.
struct Counts {
  unsigned connections = 0, parked = 0;
};
Counts countsOf(const std::string& socket) {
  json r = askApi(socket, R"({"cmd": "proc"})");
  Counts c;
  if (!r.is_object() || !r["generations"].is_array()) return c;
  for (const auto& g : r["generations"])
    for (const auto& w : g["workers"]) {
      c.connections += w["connections"].get<unsigned>();
      c.parked += w.value("parked", 0u);
    }
  return c;
}

bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return condition();
}

// A keep-alive client connection that had one answered request.
struct Client {
  explicit Client(std::uint16_t port) : fd(connectTo(port)), reader(fd.get()) {}
  bool get(const std::string& path, std::uint64_t length) {
    if (!sendAll(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n")) return false;
    Response r = readResponse(reader);
    return r.status == 200 && r.bodyLength == length && !r.has("connection");
  }
  molt::common::UniqueFd fd;
  Reader reader;
};

}  // namespace

TEST_CASE("idle keep-alive connections are parked, and served again when their client speaks",
          "[http][integration][park]") {
  Origin origin;
  TempDir dir;
  const std::string socket = dir.path() + "/api.sock";
  Molt molt(parkingConfig(origin.httpPort(), socket, "30s"));
  std::uint16_t port = molt.port("fe");
  constexpr int kClients = 40;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(port));
    REQUIRE(clients.back()->get("/size/100", 100));
  }
  // About a second after its response each is parked, and still counted as a connection.
  REQUIRE(waitFor([&] { return countsOf(socket).parked == kClients; }));
  CHECK(countsOf(socket).connections == kClients);

  // Every client speaks again: one request, two pipelined, or a body; answered in order.
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i);
    Client& c = *clients[i];
    if (i % 3 == 0) {
      REQUIRE(c.get("/size/10", 10));
    } else if (i % 3 == 1) {
      REQUIRE(sendAll(
          c.fd.get(),
          "GET /size/5 HTTP/1.1\r\nHost: t\r\n\r\nGET /size/7 HTTP/1.1\r\nHost: t\r\n\r\n"));
      Response a = readResponse(c.reader), b = readResponse(c.reader);
      CHECK(a.body == "abcde");
      CHECK(b.body == "abcdefg");
    } else {
      REQUIRE(
          sendAll(c.fd.get(), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nping"));
      CHECK(readResponse(c.reader).body == "ping");
    }
  }
  CHECK(countsOf(socket).connections == kClients);
  // Parked again, and again served.
  REQUIRE(waitFor([&] { return countsOf(socket).parked == kClients; }));
  REQUIRE(clients[5]->get("/size/3", 3));

  // A client that closes while parked: the proxy closes its side too, and forgets it.
  REQUIRE(waitFor([&] { return countsOf(socket).parked == kClients; }));
  shutdown(clients[7]->fd.get(), SHUT_WR);
  CHECK(clients[7]->reader.closed());
  REQUIRE(waitFor([&] { return countsOf(socket).connections == kClients - 1; }));
}

TEST_CASE("a parked connection is closed at its keep-alive time, counted from its last response",
          "[http][integration][park]") {
  Origin origin;
  TempDir dir;
  const std::string socket = dir.path() + "/api.sock";
  Molt molt(parkingConfig(origin.httpPort(), socket, "3s"));
  Client c(molt.port("fe"));
  REQUIRE(c.get("/size/10", 10));
  auto answered = std::chrono::steady_clock::now();
  REQUIRE(waitFor([&] { return countsOf(socket).parked == 1; }));
  CHECK(c.reader.closed());  // waits up to the socket's 10 s timeout
  auto after = std::chrono::steady_clock::now() - answered;
  CHECK(after >= 2900ms);
  CHECK(after < 8s);
  REQUIRE(waitFor([&] { return countsOf(socket).connections == 0; }));
}

TEST_CASE("a reload moves parked connections to the new generation; without migration they close",
          "[http][integration][park][reload]") {
  Origin origin;
  TempDir dir;
  const std::string socket = dir.path() + "/api.sock";
  bool migrate = GENERATE(true, false);
  INFO("migrate: " << migrate);
  Molt molt(parkingConfig(origin.httpPort(), socket, "30s",
                          migrate ? "" : R"(, "migrate": false, "close_spread": "1s")"));
  std::uint16_t port = molt.port("fe");
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(std::make_unique<Client>(port));
    REQUIRE(clients.back()->get("/size/100", 100));
  }
  REQUIRE(waitFor([&] { return countsOf(socket).parked == 10; }));
  REQUIRE(askApi(socket, R"({"cmd": "reload"})")["ok"] == true);
  if (migrate) {
    // Served by generation 2 now (the first has nothing left and exits).
    REQUIRE_LINE(molt.process(), "generation 1 gone", 10s);
    for (auto& c : clients) CHECK(c->get("/size/20", 20));
    INFO(askApi(socket, R"({"cmd": "proc"})").dump());
    CHECK(waitFor([&] { return countsOf(socket).connections == 10; }));
  } else {
    // Closed by the drain's rule for idle keep-alive connections (within close_spread).
    for (auto& c : clients) CHECK(c->reader.closed());
    REQUIRE_LINE(molt.process(), "generation 1 gone", 10s);
  }
}
