// End-to-end: a draining worker gives its memory back (issue: retiring generations).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
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
  return R"({"global": {"workers": 2},
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
  REQUIRE(memory->privateBytes < (4u << 20));
  REQUIRE(mapsOf(holder).find("molt-session-cache") == std::string::npos);
  REQUIRE(mapsOf(holder).find("molt-server-state") == std::string::npos);

  REQUIRE(webSocketEcho(ws.get(), "after the reload") == "after the reload");
  ws.reset();
  REQUIRE_LINE(molt.process(), "generation 1 gone", 10s, from);
  REQUIRE_FALSE(processAlive(holder));
}
