// End-to-end: a draining worker gives its memory back (issue: retiring generations).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <thread>

#include "common/proc_memory.hpp"
#include "tests/integration/http_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"
#include "tests/support/tls_client.hpp"

using namespace molt::test;

namespace {

// The seed's case, generated: 416 backends of 1 real and 100 spare servers (template, checked,
// disabled), host-map routing, a TLS bind with a shared session cache.
std::string seedConfig(const TempDir& dir, std::uint16_t originPort) {
  std::string map, backends;
  for (int i = 1; i <= 416; ++i) {
    map += "app" + std::to_string(i) + ".example.com " + std::to_string(i) + "\n";
    backends +=
        R"({"name": "bk_)" + std::to_string(i) +
        R"(", "servers": [{"name": "server1", "address": "127.0.0.1:)" +
        std::to_string(originPort) +
        R"("}, {"template": "server", "from": 2, "to": 101, "address": "127.0.0.1:8080", "check": true, "disabled": true}]},)";
  }
  std::string mapPath = dir.write("domain-to-app.map", map);
  REQUIRE(makeCertificate(dir.path() + "/cert.pem", "app1.example.com"));
  // Without migration: these tests are about a draining worker that keeps a connection.
  return R"({"global": {"workers": 2, "migrate": false},
    "tls": {"session_cache": "64MB"},
    "frontends": [{"name": "www", "mode": "http",
      "bind": ["127.0.0.1:0", {"address": "127.0.0.1:0", "tls": true}],
      "certificates": [")" +
         dir.path() + R"(/cert.pem"],
      "routes": [{"host_map": ")" +
         mapPath + R"(", "backend_prefix": "bk_"}],
      "default_backend": "bk_no_match"}],
    "backends": [)" +
         backends + R"({"name": "bk_no_match", "deny": 403}]})";
}

std::string mapsOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("a draining worker holding a websocket gives its memory and the cache zone back",
          "[retire][integration]") {
  Origin origin;
  TempDir dir;
  Molt molt(seedConfig(dir, origin.httpPort()));
  std::uint16_t port = molt.port("www");
  auto ws = openWebSocket(port, "/ws", "app1.example.com");  // routed through the host map
  REQUIRE(ws);
  REQUIRE(webSocketEcho(ws.get(), "before") == "before");
  auto oldWorkers = molt.workerPids(1);
  for (pid_t pid : oldWorkers) REQUIRE(mapsOf(pid).find("molt-session-cache") != std::string::npos);

  size_t from = molt.process().lines().size();
  molt.process().signal(SIGUSR2);
  REQUIRE_LINE(molt.process(), "generation 2 serving", 20s, from);
  // The old worker that keeps the websocket says so in its drain line; the other one exits.
  auto line = molt.process().waitForLine(
      R"(molt\[(\d+)\] worker gen 1 slot \d: draining: released .* 1 connections)", 5s, from);
  INFO(molt.process().output());
  REQUIRE(line);
  pid_t holder = std::stoi((*line)[1]);
  // Of the 417 backends only the websocket's is still held; routers and the rest are freed.
  REQUIRE(molt.process().waitForLine(
      "molt\\[" + std::to_string(holder) + R"(\] .*draining: kept 1 of 417 backends)", 1s, from));
  REQUIRE(std::find(oldWorkers.begin(), oldWorkers.end(), holder) != oldWorkers.end());
  // Within a second of the drain order: small private memory, no session-cache mapping.
  auto deadline = std::chrono::steady_clock::now() + 1s;
  std::optional<molt::common::ProcessMemory> memory;
  do {
    memory = molt::common::readProcessMemory(holder);
    if (memory && memory->privateBytes < (4u << 20) &&
        mapsOf(holder).find("molt-session-cache") == std::string::npos)
      break;
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < deadline);
  REQUIRE(memory);
  INFO("old worker private " << molt::common::formatBytes(memory->privateBytes));
  if (!sanitizedBuild()) REQUIRE(memory->privateBytes < (4u << 20));
  REQUIRE(mapsOf(holder).find("molt-session-cache") == std::string::npos);
  REQUIRE(mapsOf(holder).find("molt-server-state") == std::string::npos);

  REQUIRE(webSocketEcho(ws.get(), "after the reload") == "after the reload");
  ws.reset();
  REQUIRE_LINE(molt.process(), "pid " + std::to_string(holder) + R"( exited \(exit 0\))", 10s,
               from);
  REQUIRE_LINE(molt.process(), "generation 1 gone", 10s, from);
  REQUIRE_FALSE(processAlive(holder));
}

namespace {

// A websocket over TLS through TlsClient: the upgrade, then one masked text frame echoed.
bool tlsWebSocketOpen(TlsClient& tls, const std::string& host) {
  if (!tls.send("GET /ws HTTP/1.1\r\nHost: " + host +
                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
    return false;
  std::string head;
  while (head.size() < 4096 && head.find("\r\n\r\n") == std::string::npos) {
    std::string byte = tls.receive(1);
    if (byte.empty()) return false;
    head += byte;
  }
  return head.rfind("HTTP/1.1 101", 0) == 0;
}

std::string tlsWebSocketEcho(TlsClient& tls, const std::string& payload) {
  std::string frame = {'\x81', static_cast<char>(0x80 | payload.size()), 1, 2, 3, 4};
  for (size_t i = 0; i < payload.size(); ++i) frame += static_cast<char>(payload[i] ^ (1 + i % 4));
  if (!tls.send(frame)) return {};
  std::string echoed = tls.receive(2 + payload.size());
  return echoed.size() == 2 + payload.size() ? echoed.substr(2) : std::string();
}

}  // namespace

TEST_CASE("a draining worker keeps TLS working for a held connection, then frees OpenSSL",
          "[retire][integration][tls]") {
  Origin origin;
  TempDir dir;
  Molt molt(seedConfig(dir, origin.httpPort()));
  std::uint16_t tlsPort = 0;
  std::regex re(R"(frontend www listening on 127\.0\.0\.1:(\d+))");
  for (const auto& l : molt.process().lines()) {
    std::smatch m;
    if (std::regex_search(l, m, re)) tlsPort = static_cast<std::uint16_t>(std::stoi(m[1]));
  }
  REQUIRE(tlsPort != 0);  // the second bind listed is the TLS one
  auto tls = std::make_unique<TlsClient>(tlsPort, TlsClientOptions{"app1.example.com"});
  REQUIRE(tls->connected());
  REQUIRE(tlsWebSocketOpen(*tls, "app1.example.com"));
  REQUIRE(tlsWebSocketEcho(*tls, "before") == "before");

  size_t from = molt.process().lines().size();
  molt.process().signal(SIGUSR2);
  auto line = molt.process().waitForLine(
      R"(molt\[(\d+)\] worker gen 1 slot \d: draining: released .* 1 connections)", 20s, from);
  INFO(molt.process().output());
  REQUIRE(line);
  std::string holder = (*line)[1];
  REQUIRE(tlsWebSocketEcho(*tls, "during the drain") == "during the drain");
  for (const auto& l : molt.process().lines())
    REQUIRE_FALSE((l.find("molt[" + holder + "]") != std::string::npos &&
                   l.find("OpenSSL's global state freed") != std::string::npos));
  // The connection ends: OpenSSL goes, then the worker.
  tls.reset();
  REQUIRE_LINE(molt.process(), "molt\\[" + holder + "\\] .*OpenSSL's global state freed", 10s,
               from);
  REQUIRE_LINE(molt.process(), "pid " + holder + R"( exited \(exit 0\))", 10s, from);
  REQUIRE_LINE(molt.process(), "generation 1 gone", 10s, from);
}

TEST_CASE("the master keeps nothing of a draining generation but its workers",
          "[retire][integration]") {
  Origin origin;
  TempDir dir;
  Molt molt(seedConfig(dir, origin.httpPort()));
  pid_t master = molt.process().pid();
  auto before = molt::common::readProcessMemory(master);
  REQUIRE(before);
  // Three reloads, each generation kept alive by a websocket: the master's private memory and
  // the instance's shared memory (the generations' server-state zones) must not grow with them.
  std::vector<molt::common::UniqueFd> held;
  for (unsigned g = 2; g <= 4; ++g) {
    held.push_back(openWebSocket(molt.port("www", g - 1), "/ws", "app1.example.com"));
    REQUIRE(held.back());
    size_t from = molt.process().lines().size();
    molt.process().signal(SIGUSR2);
    REQUIRE_LINE(molt.process(), "generation " + std::to_string(g) + " serving", 20s, from);
  }
  std::this_thread::sleep_for(300ms);
  auto after = molt::common::readProcessMemory(master);
  REQUIRE(after);
  INFO("master private before " << molt::common::formatBytes(before->privateBytes) << ", after "
                                << molt::common::formatBytes(after->privateBytes));
  // One generation's parsed config is about 6 MiB here: three of them kept would show.
  if (!sanitizedBuild()) REQUIRE(after->privateBytes < before->privateBytes + (1u << 20));
  // Only the serving generation's server-state zone is still open in the master.
  size_t zones = 0;
  std::string maps = mapsOf(master);
  for (size_t at = 0; (at = maps.find("molt-server-state", at)) != std::string::npos; ++at) ++zones;
  REQUIRE(zones == 1);
  for (auto& ws : held) REQUIRE(webSocketEcho(ws.get(), "still here") == "still here");
}
