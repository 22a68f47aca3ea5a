// End-to-end: idle keep-alive connections parked as a bare descriptor (worker/net/parking.hpp),
// served again when their client speaks, closed at their keep-alive time, and carried through
// reloads; TLS keep-alive connections parked with their OpenSSL state, likewise; idle websockets
// and tcp tunnels parked as their two descriptors, woken by either side, ended at their tunnel
// timeout and logged once (issue 20).
#include <poll.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <regex>
#include <thread>
#include <vector>

#include "tests/integration/http_client.hpp"
#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"
#include "tests/support/tls_client.hpp"

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

// The TLS frontends' certificate for site.test, made once per test process.
std::string siteCertificate() {
  static TempDir certificates;
  static bool made = makeCertificate(certificates.path() + "/site.pem", "site.test");
  REQUIRE(made);
  return certificates.path() + "/site.pem";
}

// Parking's TLS frontend "fe".
std::string tlsParkingConfig(std::uint16_t originPort, const std::string& socket,
                             const std::string& keepAlive, const std::string& global = "") {
  return R"({"global": {"workers": 1, "hard_stop_after": "20s", "api_socket": ")" + socket +
         R"(")" + global + R"(},
    "frontends": [{"name": "fe", "mode": "http",
                   "bind": [{"address": "127.0.0.1:0", "tls": true}],
                   "certificates": [")" +
         siteCertificate() + R"("], "timeouts": {"keep_alive": ")" + keepAlive +
         R"("}, "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(originPort) + R"("}]}]})";
}

// One answer read off a TLS connection: its status line and body (Content-Length or chunked).
struct TlsAnswer {
  std::string status, body;
};
std::string lineOf(TlsClient& client) {
  std::string line;
  while (line.size() < 2 || line.compare(line.size() - 2, 2, "\r\n") != 0) {
    std::string byte = client.receive(1);
    if (byte.empty()) return {};
    line += byte;
  }
  return line.substr(0, line.size() - 2);
}
TlsAnswer readAnswer(TlsClient& client) {
  TlsAnswer a{lineOf(client), {}};
  std::size_t length = 0;
  bool chunked = false;
  for (std::string header; !(header = lineOf(client)).empty();) {
    std::smatch m;
    if (std::regex_match(header, m, std::regex("content-length: *(\\d+)", std::regex::icase)))
      length = std::stoul(m[1]);
    chunked |=
        std::regex_match(header, std::regex("transfer-encoding: *chunked", std::regex::icase));
  }
  if (!chunked) {
    a.body = client.receive(length);
    return a;
  }
  for (;;) {
    std::string size = lineOf(client);
    std::size_t n = size.empty() ? 0 : std::stoul(size, nullptr, 16);
    if (n == 0) break;
    a.body += client.receive(n);
    lineOf(client);
  }
  lineOf(client);  // the empty trailer
  return a;
}

bool tlsGet(TlsClient& client, const std::string& path, std::size_t length) {
  if (!client.send("GET " + path + " HTTP/1.1\r\nHost: site.test\r\n\r\n")) return false;
  TlsAnswer a = readAnswer(client);
  return a.status == "HTTP/1.1 200 OK" && a.body.size() == length;
}

// An http frontend "fe" whose upgrades go to `wsPort`, a tcp frontend "raw" to `tcpPort`: both
// servers are the test's own listeners, so that either side of a tunnel can speak first. With
// `tls`, both frontends terminate TLS.
std::string tunnelConfig(const std::string& socket, std::uint16_t wsPort, std::uint16_t tcpPort,
                         const std::string& tunnelTimeout, const std::string& global = "",
                         bool tls = false) {
  const std::string bind =
      tls ? R"("bind": [{"address": "127.0.0.1:0", "tls": true}], "certificates": [")" +
                siteCertificate() + R"("])"
          : R"("bind": ["127.0.0.1:0"])";
  auto backend = [&](const char* name, const char* server, std::uint16_t port) {
    return std::string(R"({"name": ")") + name + R"(", "timeouts": {"tunnel": ")" + tunnelTimeout +
           R"("}, "servers": [{"name": ")" + server + R"(", "address": "127.0.0.1:)" +
           std::to_string(port) + R"("}]})";
  };
  return R"({"global": {"workers": 1, "hard_stop_after": "20s", "api_socket": ")" + socket +
         R"(")" + global + R"(},
    "frontends": [
      {"name": "fe", "mode": "http", )" +
         bind + R"(, "default_backend": "ws"},
      {"name": "raw", "mode": "tcp", )" +
         bind + R"(, "default_backend": "tcp"}],
    "backends": [)" +
         backend("ws", "w", wsPort) + ", " + backend("tcp", "t", tcpPort) + "]}";
}

// The connections the serving generation counts on each server ("w", "t").
std::map<std::string, unsigned> serverConnections(const std::string& socket) {
  json r = askApi(socket, R"({"cmd": "servers"})");
  std::map<std::string, unsigned> out;
  if (r.is_object() && r["servers"].is_array())
    for (const auto& s : r["servers"])
      out[s["name"].get<std::string>()] = s["connections"].get<unsigned>();
  return out;
}

// A connection the test's listener accepted, with the same 10 s timeouts as connectTo's.
molt::common::UniqueFd acceptFrom(int listener) {
  pollfd p{listener, POLLIN, 0};
  if (poll(&p, 1, 10'000) != 1) return {};
  molt::common::UniqueFd fd(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  timeval tv{10, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

// One proxied tunnel: the test holds both ends, and counts the bytes each way after the heads.
struct Tunnel {
  molt::common::UniqueFd client, server;
  std::string path;  // the websocket's request target; empty for a tcp tunnel
  std::size_t requestHead = 0, responseHead = 0, up = 0, down = 0;

  bool send(bool fromServer, const std::string& bytes) {
    int from = fromServer ? server.get() : client.get();
    int to = fromServer ? client.get() : server.get();
    (fromServer ? down : up) += bytes.size();
    return sendAll(from, bytes) && recvExactly(to, bytes.size()) == bytes;
  }
};

// A websocket upgrade through "fe", answered 101 by the test's server.
Tunnel openWebSocketTo(std::uint16_t port, int listener, const std::string& path) {
  Tunnel t;
  t.path = path;
  t.client = connectTo(port);
  std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  REQUIRE(sendAll(t.client.get(), request));
  t.requestHead = request.size();
  t.server = acceptFrom(listener);
  REQUIRE(t.server);
  REQUIRE(recvUntil(t.server.get(), "\r\n\r\n").find("GET " + path + " ") == 0);
  REQUIRE(sendAll(t.server.get(),
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                  "Upgrade\r\n\r\n"));
  std::string head = recvUntil(t.client.get(), "\r\n\r\n");
  REQUIRE(head.find("HTTP/1.1 101 ") == 0);
  t.responseHead = head.size();
  return t;
}

Tunnel openTcpTunnel(std::uint16_t port, int listener) {
  Tunnel t;
  t.client = connectTo(port);
  REQUIRE(sendAll(t.client.get(), "hello"));
  t.server = acceptFrom(listener);
  REQUIRE(t.server);
  REQUIRE(recvExactly(t.server.get(), 5) == "hello");
  t.up = 5;
  return t;
}

// The access-log lines of the websocket at `path`.
std::vector<std::string> accessLines(Molt& molt, const std::string& path) {
  std::vector<std::string> out;
  for (const auto& line : molt.process().lines())
    if (line.find("access ") != std::string::npos &&
        line.find("\"GET " + path + " HTTP/1.1\"") != std::string::npos)
      out.push_back(line);
  return out;
}

// The test's own two servers (websocket and tcp), and molt in front of them (tunnelConfig).
struct TunnelServers {
  TunnelServers(const std::string& tunnelTimeout, const std::string& global, bool tls) {
    REQUIRE((wsListener && tcpListener));
    proxy =
        std::make_unique<Molt>(tunnelConfig(socket, wsPort, tcpPort, tunnelTimeout, global, tls));
  }
  TempDir dir;
  const std::string socket = dir.path() + "/api.sock";
  std::uint16_t wsPort = 0, tcpPort = 0;
  molt::common::UniqueFd wsListener = listenOnLoopback(wsPort);
  molt::common::UniqueFd tcpListener = listenOnLoopback(tcpPort);
  std::unique_ptr<Molt> proxy;
};

struct TunnelSetup : TunnelServers {
  explicit TunnelSetup(const std::string& tunnelTimeout, const std::string& global = "")
      : TunnelServers(tunnelTimeout, global, false) {}
  Tunnel webSocket(const std::string& path) {
    return openWebSocketTo(proxy->port("fe"), wsListener.get(), path);
  }
  Tunnel tcp() { return openTcpTunnel(proxy->port("raw"), tcpListener.get()); }
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

TEST_CASE("idle websockets and tcp tunnels are parked, and woken by either side",
          "[http][tcp][integration][park][websocket]") {
  TunnelSetup setup("30s");
  Molt& molt = *setup.proxy;
  const std::string& socket = setup.socket;
  constexpr int kEach = 3;
  std::vector<Tunnel> tunnels;
  for (int i = 0; i < kEach; ++i) tunnels.push_back(setup.webSocket("/ws/" + std::to_string(i)));
  for (int i = 0; i < kEach; ++i) tunnels.push_back(setup.tcp());
  for (auto& t : tunnels) REQUIRE(t.send(true, "first"));

  // Parked about a second after their last byte, and still counted: as connections, and as
  // connections of their servers (least-connection balancing and max_connections see them).
  for (int round = 0; round < 2; ++round) {
    INFO("round " << round);
    REQUIRE(waitFor([&] { return countsOf(socket).parked == 2 * kEach; }));
    CHECK(countsOf(socket).connections == 2 * kEach);
    auto perServer = serverConnections(socket);
    CHECK(perServer["w"] == kEach);
    CHECK(perServer["t"] == kEach);
    // Woken by the server's bytes or the client's, then both ways.
    for (std::size_t i = 0; i < tunnels.size(); ++i) {
      INFO("tunnel " << i);
      bool serverFirst = (i + round) % 2 == 0;
      REQUIRE(tunnels[i].send(serverFirst, "wake " + std::to_string(i)));
      REQUIRE(tunnels[i].send(!serverFirst, "answer"));
    }
    // Served again, all of them (the worker reports its counts within 100 ms of a change).
    REQUIRE(waitFor([&] { return countsOf(socket).parked == 0; }));
    CHECK(countsOf(socket).connections == 2 * kEach);
  }

  // A parked websocket whose client closes: the server sees the end, and its close ends the
  // tunnel, logged once with every byte both ways. A parked tcp tunnel whose server closes.
  REQUIRE(waitFor([&] { return countsOf(socket).parked == 2 * kEach; }));
  Tunnel& ws = tunnels[0];
  shutdown(ws.client.get(), SHUT_WR);
  bool eof = false;
  CHECK(recvUntilEof(ws.server.get(), &eof).empty());
  CHECK(eof);
  ws.server.reset();
  CHECK(recvUntilEof(ws.client.get(), &eof).empty());
  CHECK(eof);
  Tunnel& tcp = tunnels[kEach];
  tcp.server.reset();
  CHECK(recvUntilEof(tcp.client.get(), &eof).empty());
  CHECK(eof);
  tcp.client.reset();  // the other half
  REQUIRE(waitFor([&] { return countsOf(socket).connections == 2 * kEach - 2; }));
  auto perServer = serverConnections(socket);
  CHECK(perServer["w"] == kEach - 1);
  CHECK(perServer["t"] == kEach - 1);
  REQUIRE(waitFor([&] { return accessLines(molt, ws.path).size() == 1; }));
  std::string line = accessLines(molt, ws.path)[0];
  INFO(line);
  CHECK(line.find("\" 101 in=" + std::to_string(ws.requestHead + ws.up) +
                  " out=" + std::to_string(ws.responseHead + ws.down) + " ") != std::string::npos);
  CHECK(line.find("term=") == std::string::npos);
  std::smatch total;
  REQUIRE(std::regex_search(line, total, std::regex(R"(total=([0-9.]+)ms)")));
  CHECK(std::stod(total[1]) > 2000);  // from the upgrade's request to the tunnel's end
  // The others were not logged: their tunnels go on.
  CHECK(accessLines(molt, tunnels[1].path).empty());
}

TEST_CASE("a parked tunnel ends at its tunnel timeout, counted from its last byte, logged once",
          "[http][tcp][integration][park][websocket]") {
  TunnelSetup setup("3s");
  Molt& molt = *setup.proxy;
  const std::string& socket = setup.socket;
  std::vector<Tunnel> tunnels;
  tunnels.push_back(setup.webSocket("/ws/t"));
  tunnels.push_back(setup.tcp());
  for (auto& t : tunnels) REQUIRE(t.send(false, "last"));
  auto last = std::chrono::steady_clock::now();
  REQUIRE(waitFor([&] { return countsOf(socket).parked == 2; }));
  for (auto& t : tunnels) {
    bool eof = false;
    CHECK(recvUntilEof(t.client.get(), &eof).empty());  // up to the socket's 10 s timeout
    CHECK(eof);
    CHECK(recvUntilEof(t.server.get(), &eof).empty());
    CHECK(eof);
  }
  auto after = std::chrono::steady_clock::now() - last;
  CHECK(after >= 2900ms);
  CHECK(after < 8s);
  REQUIRE(waitFor([&] { return countsOf(socket).connections == 0; }));
  auto perServer = serverConnections(socket);
  CHECK(perServer["w"] == 0);
  CHECK(perServer["t"] == 0);
  REQUIRE(waitFor([&] { return accessLines(molt, "/ws/t").size() == 1; }));
  CHECK(accessLines(molt, "/ws/t")[0].find(R"( 101 )") != std::string::npos);
  CHECK(accessLines(molt, "/ws/t")[0].find(R"(term="tunnel timeout")") != std::string::npos);
}

TEST_CASE("a reload moves parked tunnels to the new generation; without migration they stay",
          "[http][tcp][integration][park][reload][websocket]") {
  bool migrate = GENERATE(true, false);
  INFO("migrate: " << migrate);
  TunnelSetup setup("30s", migrate ? "" : R"(, "migrate": false)");
  Molt& molt = *setup.proxy;
  const std::string& socket = setup.socket;
  std::vector<Tunnel> tunnels;
  tunnels.push_back(setup.webSocket("/ws/r"));
  tunnels.push_back(setup.tcp());
  REQUIRE(waitFor([&] { return countsOf(socket).parked == 2; }));
  REQUIRE(askApi(socket, R"({"cmd": "reload"})")["ok"] == true);
  REQUIRE_LINE(molt.process(), "generation 2 serving", 10s);
  if (migrate) REQUIRE_LINE(molt.process(), "generation 1 gone", 10s);
  for (auto& t : tunnels) {
    REQUIRE(t.send(true, "after the reload"));
    REQUIRE(t.send(false, "both ways"));
  }
  if (migrate) {
    // Moved, they park again in the new generation (the websocket as the tcp-style tunnel its
    // new worker adopted), and wake as they did; ended there, neither is logged as a request.
    REQUIRE(waitFor([&] { return countsOf(socket).parked == 2; }));
    for (auto& t : tunnels) {
      REQUIRE(t.send(false, "parked again"));
      REQUIRE(t.send(true, "and woken"));
    }
    for (auto& t : tunnels) t.client.reset(), t.server.reset();
    REQUIRE(waitFor([&] { return countsOf(socket).connections == 0; }));
    for (const auto& line : molt.process().lines()) {
      if (line.find(" access ") == std::string::npos) continue;
      INFO(line);
      CHECK(std::regex_search(line, std::regex(R"("GET /ws/r HTTP/1\.1")")));
    }
  }
  if (!migrate) {
    // The draining generation serves them until they end.
    for (auto& t : tunnels) t.client.reset(), t.server.reset();
    REQUIRE_LINE(molt.process(), "generation 1 gone", 10s);
  }
}

TEST_CASE("idle TLS keep-alive connections are parked with their TLS state, and served again",
          "[http][integration][park][tls]") {
  Origin origin;
  TempDir dir;
  const std::string socket = dir.path() + "/api.sock";
  Molt molt(tlsParkingConfig(origin.httpPort(), socket, "30s"));
  std::uint16_t port = molt.port("fe");
  constexpr int kClients = 12;
  std::vector<std::unique_ptr<TlsClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    TlsClientOptions options{"site.test", i % 2 ? "TLSv1.2" : "TLSv1.3"};
    clients.push_back(std::make_unique<TlsClient>(port, options));
    INFO(clients.back()->error());
    REQUIRE(clients.back()->connected());
    REQUIRE(tlsGet(*clients.back(), "/size/100", 100));
  }
  REQUIRE(waitFor([&] { return countsOf(socket).parked == kClients; }));
  CHECK(countsOf(socket).connections == kClients);

  // Each speaks again over the same TLS session: one request, two pipelined, or a body.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kClients; ++i) {
      INFO("round " << round << ", client " << i);
      TlsClient& c = *clients[i];
      if (i % 3 == 0) {
        REQUIRE(tlsGet(c, "/size/10", 10));
      } else if (i % 3 == 1) {
        REQUIRE(c.send(
            "GET /size/5 HTTP/1.1\r\nHost: t\r\n\r\nGET /size/7 HTTP/1.1\r\nHost: t\r\n\r\n"));
        CHECK(readAnswer(c).body == "abcde");
        CHECK(readAnswer(c).body == "abcdefg");
      } else {
        REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nping"));
        CHECK(readAnswer(c).body == "ping");
      }
    }
    // All were served again by sessions (the worker's report comes within 100 ms), and park
    // again a second later.
    REQUIRE(waitFor([&] { return countsOf(socket).parked == 0; }));
    CHECK(countsOf(socket).connections == kClients);
    REQUIRE(waitFor([&] { return countsOf(socket).parked == kClients; }));
  }
  // The access log still says which TLS version each connection speaks.
  REQUIRE_LINE(molt.process(), R"re(access fe=fe .*"POST /echo HTTP/1\.1" 200 .*TLSv1\.2)re", 5s);

  // A client that says close_notify while parked: answered with molt's own, and forgotten.
  clients[4]->closeSending();
  CHECK(clients[4]->receive(1).empty());
  CHECK(clients[4]->peerClosedCleanly());
  REQUIRE(waitFor([&] { return countsOf(socket).connections == kClients - 1; }));
  CHECK(countsOf(socket).parked == kClients - 1);
  // One that just closes its socket while parked.
  clients[5].reset();
  REQUIRE(waitFor([&] { return countsOf(socket).connections == kClients - 2; }));
  CHECK(countsOf(socket).parked == kClients - 2);
}

TEST_CASE("a parked TLS connection closes at its keep-alive time with close_notify",
          "[http][integration][park][tls]") {
  Origin origin;
  TempDir dir;
  const std::string socket = dir.path() + "/api.sock";
  Molt molt(tlsParkingConfig(origin.httpPort(), socket, "3s"));
  TlsClient client(molt.port("fe"), {"site.test"});
  REQUIRE(client.connected());
  REQUIRE(tlsGet(client, "/size/10", 10));
  auto answered = std::chrono::steady_clock::now();
  REQUIRE(waitFor([&] { return countsOf(socket).parked == 1; }));
  CHECK(client.receive(1).empty());  // waits up to the socket's 10 s timeout
  auto after = std::chrono::steady_clock::now() - answered;
  CHECK(client.peerClosedCleanly());
  CHECK(after >= 2900ms);
  CHECK(after < 8s);
  REQUIRE(waitFor([&] { return countsOf(socket).connections == 0; }));
}

TEST_CASE("a reload serves parked TLS connections again in the old generation, which closes them",
          "[http][integration][park][tls][reload]") {
  Origin origin;
  TempDir dir;
  const std::string socket = dir.path() + "/api.sock";
  Molt molt(tlsParkingConfig(origin.httpPort(), socket, "30s", R"(, "close_spread": "1s")"));
  std::vector<std::unique_ptr<TlsClient>> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(std::make_unique<TlsClient>(molt.port("fe"), TlsClientOptions{"site.test"}));
    REQUIRE(clients.back()->connected());
    REQUIRE(tlsGet(*clients.back(), "/size/100", 100));
  }
  REQUIRE(waitFor([&] { return countsOf(socket).parked == 6; }));
  REQUIRE(askApi(socket, R"({"cmd": "reload"})")["ok"] == true);
  // TLS state cannot move to another process: served by sessions again, they close by the
  // drain's rule for idle keep-alive connections (within close_spread), with close_notify.
  for (auto& c : clients) {
    CHECK(c->receive(1).empty());
    CHECK(c->peerClosedCleanly());
  }
  REQUIRE_LINE(molt.process(), "generation 1 gone", 10s);
}

TEST_CASE(
    "an idle TLS connection that is not parked closes at its keep-alive time with close_notify",
    "[http][integration][tls]") {
  Origin origin;
  TempDir dir;
  const std::string socket = dir.path() + "/api.sock";
  // A keep-alive time of a second: not worth parking.
  Molt molt(tlsParkingConfig(origin.httpPort(), socket, "1s"));
  TlsClient client(molt.port("fe"), {"site.test"});
  REQUIRE(client.connected());
  REQUIRE(tlsGet(client, "/size/10", 10));
  CHECK(client.receive(1).empty());
  CHECK(client.peerClosedCleanly());
  CHECK(countsOf(socket).parked == 0);

  // A client that closes its socket without close_notify is sent none: it would not read it.
  TlsClient bare(molt.port("fe"), {"site.test"});
  REQUIRE(bare.connected());
  REQUIRE(tlsGet(bare, "/size/10", 10));
  bare.closeSocketSending();
  CHECK(bare.rawBytesUntilClose() == 0);
}

namespace {

// One tunnel whose client speaks TLS; the test holds the client and the server's socket.
struct TlsTunnel {
  std::unique_ptr<TlsClient> client;
  molt::common::UniqueFd server;
  std::string path;
  bool send(bool fromServer, const std::string& bytes) {
    if (fromServer) return sendAll(server.get(), bytes) && client->receive(bytes.size()) == bytes;
    return client->send(bytes) && recvExactly(server.get(), bytes.size()) == bytes;
  }
};

// The test's websocket and tcp servers, and molt terminating TLS in front of them.
struct TlsTunnelSetup : TunnelServers {
  explicit TlsTunnelSetup(const std::string& tunnelTimeout)
      : TunnelServers(tunnelTimeout, "", true) {}
  TlsTunnel webSocket(const std::string& path, const std::string& version) {
    TlsTunnel t;
    t.path = path;
    t.client =
        std::make_unique<TlsClient>(proxy->port("fe"), TlsClientOptions{"site.test", version});
    REQUIRE(t.client->connected());
    REQUIRE(t.client->send(
        "GET " + path +
        " HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"));
    t.server = acceptFrom(wsListener.get());
    REQUIRE(t.server);
    REQUIRE(recvUntil(t.server.get(), "\r\n\r\n").find("GET " + path + " ") == 0);
    REQUIRE(sendAll(t.server.get(),
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                    "Upgrade\r\n\r\n"));
    REQUIRE(lineOf(*t.client).find("HTTP/1.1 101 ") == 0);
    while (!lineOf(*t.client).empty()) {
    }
    return t;
  }
  TlsTunnel tcp(const std::string& version) {
    TlsTunnel t;
    t.client =
        std::make_unique<TlsClient>(proxy->port("raw"), TlsClientOptions{"site.test", version});
    REQUIRE(t.client->connected());
    REQUIRE(t.client->send("hello"));
    t.server = acceptFrom(tcpListener.get());
    REQUIRE(t.server);
    REQUIRE(recvExactly(t.server.get(), 5) == "hello");
    return t;
  }
};

}  // namespace

TEST_CASE("idle TLS websockets and TLS tcp tunnels are parked with their TLS state, and woken",
          "[http][tcp][integration][park][tls][websocket]") {
  TlsTunnelSetup setup("30s");
  const std::string& socket = setup.socket;
  constexpr int kEach = 3;
  std::vector<TlsTunnel> tunnels;
  for (int i = 0; i < kEach; ++i)
    tunnels.push_back(setup.webSocket("/wss/" + std::to_string(i), i % 2 ? "TLSv1.2" : "TLSv1.3"));
  for (int i = 0; i < kEach; ++i) tunnels.push_back(setup.tcp(i % 2 ? "TLSv1.3" : "TLSv1.2"));
  for (auto& t : tunnels) REQUIRE(t.send(false, "first"));

  for (int round = 0; round < 2; ++round) {
    INFO("round " << round);
    REQUIRE(waitFor([&] { return countsOf(socket).parked == 2 * kEach; }));
    CHECK(countsOf(socket).connections == 2 * kEach);
    // Woken by either side, then both ways, over the same TLS sessions (no new handshake: the
    // clients would fail on one).
    for (std::size_t i = 0; i < tunnels.size(); ++i) {
      INFO("tunnel " << i);
      bool serverFirst = (i + round) % 2 == 0;
      REQUIRE(tunnels[i].send(serverFirst, "wake " + std::to_string(i)));
      REQUIRE(tunnels[i].send(!serverFirst, std::string(20000, 'a' + static_cast<char>(i))));
    }
    REQUIRE(waitFor([&] { return countsOf(socket).parked == 0; }));
    CHECK(countsOf(socket).connections == 2 * kEach);
  }

  // A parked websocket whose client says close_notify: the server sees the end; its close ends
  // the tunnel, which the client sees end cleanly, logged once with its TLS version.
  REQUIRE(waitFor([&] { return countsOf(socket).parked == 2 * kEach; }));
  TlsTunnel& ws = tunnels[1];
  ws.client->closeSending();
  bool eof = false;
  CHECK(recvUntilEof(ws.server.get(), &eof).empty());
  CHECK(eof);
  ws.server.reset();
  CHECK(ws.client->receive(1).empty());
  CHECK(ws.client->peerClosedCleanly());
  // A parked tcp tunnel whose server closes: the client is told with close_notify.
  TlsTunnel& tcp = tunnels[kEach];
  tcp.server.reset();
  CHECK(tcp.client->receive(1).empty());
  CHECK(tcp.client->peerClosedCleanly());
  tcp.client.reset();
  REQUIRE(waitFor([&] { return countsOf(socket).connections == 2 * kEach - 2; }));
  REQUIRE_LINE(setup.proxy->process(),
               R"re(access fe=fe .*"GET /wss/1 HTTP/1\.1" 101 .* tls=TLSv1\.2)re", 5s);
}

TEST_CASE("a parked TLS tunnel ends at its tunnel timeout with close_notify",
          "[http][integration][park][tls][websocket]") {
  TlsTunnelSetup setup("3s");
  TlsTunnel ws = setup.webSocket("/wss/timeout", "");
  REQUIRE(ws.send(true, "last"));
  auto last = std::chrono::steady_clock::now();
  REQUIRE(waitFor([&] { return countsOf(setup.socket).parked == 1; }));
  CHECK(ws.client->receive(1).empty());  // waits up to the socket's 10 s timeout
  auto after = std::chrono::steady_clock::now() - last;
  CHECK(ws.client->peerClosedCleanly());
  CHECK(after >= 2900ms);
  CHECK(after < 8s);
  bool eof = false;
  CHECK(recvUntilEof(ws.server.get(), &eof).empty());
  CHECK(eof);
  REQUIRE(waitFor([&] { return countsOf(setup.socket).connections == 0; }));
}
