// End-to-end: live connection migration (issue 15). A reload moves a retiring generation's
// plaintext connections at a clean boundary to the new generation, which serves them on the same
// sockets with its own config; the old generation then exits.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <random>
#include <regex>
#include <thread>

#include "tests/integration/http_client.hpp"
#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"
#include "tests/support/tls_client.hpp"

using namespace molt::test;
using molt::common::UniqueFd;
using json = nlohmann::json;

namespace {

// An http frontend (plaintext, and TLS when `cert` is given) to `httpPort`, a tcp frontend to
// `echoPort`, the API socket in `dir`.
std::string config(const TempDir& dir, std::uint16_t httpPort, std::uint16_t echoPort,
                   const std::string& global = "", const std::string& cert = "",
                   unsigned workers = 2) {
  std::string binds = cert.empty() ? R"(["127.0.0.1:0"])"
                                   : R"(["127.0.0.1:0", {"address": "127.0.0.1:0", "tls": true}])";
  std::string certs = cert.empty() ? "" : R"("certificates": [")" + cert + R"("],)";
  return R"({"global": {"workers": )" + std::to_string(workers) +
         R"(, "close_spread": "200ms", "api_socket": ")" + dir.path() + R"(/api.sock")" + global +
         R"(},
    "frontends": [
      {"name": "web", "mode": "http", "bind": )" +
         binds + ", " + certs + R"( "default_backend": "app"},
      {"name": "raw", "mode": "tcp", "bind": ["127.0.0.1:0"], "default_backend": "echo"}],
    "backends": [
      {"name": "app", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(httpPort) + R"("}]},
      {"name": "echo", "servers": [{"name": "e", "address": "127.0.0.1:)" +
         std::to_string(echoPort) + R"("}]}]})";
}

// One keep-alive request on an open connection: the response, and nothing after it.
Response ask(int fd, const std::string& path = "/") {
  if (!sendAll(fd, "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n")) return {};
  Reader reader(fd);
  return readResponse(reader);
}

// True when no byte more than what was read arrives within `wait` (no doubled response); the
// connection may have been closed.
bool quiet(int fd, std::chrono::milliseconds wait = 200ms) {
  std::this_thread::sleep_for(wait);
  char byte;
  ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == EAGAIN);
}

// The API's proc report once `done` holds for it (worker stats arrive within 100 ms).
json procWhen(const TempDir& dir, const std::function<bool(const json&)>& done) {
  json proc;
  for (int i = 0; i < 60; ++i) {
    proc = askApi(dir.path() + "/api.sock", R"({"cmd": "proc"})");
    if (done(proc)) break;
    std::this_thread::sleep_for(50ms);
  }
  return proc;
}

void reloadTo(Molt& molt, unsigned generation) {
  size_t from = molt.process().lines().size();
  molt.process().signal(SIGHUP);
  INFO(molt.process().output());
  REQUIRE_LINE(molt.process(), "generation " + std::to_string(generation) + " serving", 20s, from);
}

// A masked binary websocket frame carrying `payload` (< 126 bytes).
std::string maskedFrame(const std::string& payload) {
  std::string frame = {'\x82', static_cast<char>(0x80 | payload.size()), 9, 8, 7, 6};
  for (size_t i = 0; i < payload.size(); ++i)
    frame += static_cast<char>(payload[i] ^ (9 - static_cast<int>(i % 4)));
  return frame;
}

std::string readFramePayload(int fd) {
  std::string head = recvExactly(fd, 2);
  if (head.size() != 2) return "<closed>";
  return recvExactly(fd, static_cast<unsigned char>(head[1]) & 0x7f);
}

}  // namespace

TEST_CASE("a reload moves keep-alive connections, websockets and tcp tunnels to the new generation",
          "[migration][integration]") {
  Origin a("A"), b("B");
  TempDir dir;
  Molt molt(config(dir, a.httpPort(), a.echoPort()));
  std::uint16_t web = molt.port("web"), raw = molt.port("raw");
  std::vector<UniqueFd> keepAlive, sockets;
  for (int i = 0; i < 4; ++i) {
    keepAlive.push_back(connectTo(web));
    REQUIRE(ask(keepAlive.back().get()).body == "A\n");
  }
  for (int i = 0; i < 3; ++i) {
    sockets.push_back(openWebSocket(web, "/ws", "t"));
    REQUIRE(sockets.back());
    REQUIRE(webSocketEcho(sockets.back().get(), "before") == "before");
  }
  auto tcp = connectTo(raw);
  REQUIRE(sendAll(tcp.get(), "ping"));
  REQUIRE(recvExactly(tcp.get(), 4) == "ping");

  // The new config sends new requests to origin B.
  molt.rewriteConfig(config(dir, b.httpPort(), b.echoPort()));
  size_t from = molt.process().lines().size();
  reloadTo(molt, 2);
  INFO(molt.process().output());
  REQUIRE_LINE(molt.process(), "generation 1 gone", 5s, from);
  REQUIRE(molt.process().waitForLine(R"(migration: \d+ connections moved)", 1s, from));

  // Same sockets, new generation: its routing, and the tunnels' own server connections.
  for (auto& fd : keepAlive) {
    REQUIRE(ask(fd.get()).body == "B\n");
    REQUIRE(quiet(fd.get(), 0ms));
  }
  for (auto& fd : sockets) REQUIRE(webSocketEcho(fd.get(), "after") == "after");
  REQUIRE(sendAll(tcp.get(), "pong"));
  REQUIRE(recvExactly(tcp.get(), 4) == "pong");

  auto adopted = [](const json& proc) {
    std::uint64_t in = 0;
    for (const auto& w : proc["generations"][0]["workers"]) in += w["migrated_in"].get<unsigned>();
    return in;
  };
  json proc = procWhen(dir, [&](const json& p) { return adopted(p) == 8; });
  REQUIRE(proc["generations"].size() == 1);
  REQUIRE(adopted(proc) == 8);
  REQUIRE(proc["migration"]["moved"] == 8);
}

TEST_CASE("bytes in flight both ways through a tcp tunnel survive reloads, checksummed",
          "[migration][integration]") {
  Origin origin;
  TempDir dir;
  Molt molt(config(dir, origin.httpPort(), origin.echoPort()));
  auto fd = connectTo(molt.port("raw"));
  REQUIRE(fd);
  constexpr size_t kTotal = 24u << 20;  // echoed back: both directions busy the whole time
  std::atomic<bool> sending{true};
  std::uint64_t sentHash = kFnvStart, receivedHash = kFnvStart;
  std::thread writer([&] {
    std::mt19937 random(7);
    std::string chunk(64 * 1024, '\0');
    for (size_t sent = 0; sent < kTotal; sent += chunk.size()) {
      std::this_thread::sleep_for(8ms);  // about 3 s in all, through three reloads
      for (auto& c : chunk) c = static_cast<char>(random());
      sentHash = fnv(sentHash, chunk.data(), chunk.size());
      if (!sendAll(fd.get(), chunk)) break;
    }
    sending = false;
  });
  size_t received = 0;
  std::thread reader([&] {
    char buffer[32 * 1024];
    while (received < kTotal) {
      ssize_t n = recv(fd.get(), buffer, sizeof buffer, 0);
      if (n <= 0) break;
      receivedHash = fnv(receivedHash, buffer, static_cast<size_t>(n));
      received += static_cast<size_t>(n);
    }
  });
  // Reloads while the bytes flow; each retiring generation moves the tunnel on.
  for (unsigned g = 2; g <= 4; ++g) {
    std::this_thread::sleep_for(150ms);
    reloadTo(molt, g);
    REQUIRE_LINE(molt.process(), "generation " + std::to_string(g - 1) + " gone", 10s);
  }
  writer.join();
  reader.join();
  INFO(molt.process().output());
  REQUIRE(received == kTotal);
  REQUIRE(receivedHash == sentHash);
}

TEST_CASE("a websocket moves mid-frame and its frames arrive whole and in order",
          "[migration][integration][websocket]") {
  Origin origin;
  TempDir dir;
  Molt molt(config(dir, origin.httpPort(), origin.echoPort()));
  auto ws = openWebSocket(molt.port("web"), "/ws", "t");
  REQUIRE(ws);
  // Half a frame before the reload, the rest after: the tunnel moves with it in the kernel.
  std::string first = maskedFrame("one frame split across a reload");
  REQUIRE(sendAll(ws.get(), first.substr(0, 9)));
  reloadTo(molt, 2);
  REQUIRE_LINE(molt.process(), "generation 1 gone", 5s);
  REQUIRE(sendAll(ws.get(), first.substr(9)));
  REQUIRE(readFramePayload(ws.get()) == "one frame split across a reload");
  // Frames sent back to back right across the next reload come back in order.
  std::thread burst([&] {
    for (int i = 0; i < 200; ++i) sendAll(ws.get(), maskedFrame("frame " + std::to_string(i)));
  });
  reloadTo(molt, 3);
  burst.join();
  for (int i = 0; i < 200; ++i) REQUIRE(readFramePayload(ws.get()) == "frame " + std::to_string(i));
  REQUIRE_LINE(molt.process(), "generation 2 gone", 5s);
}

TEST_CASE("pipelined requests buffered when the drain comes are answered by the new generation",
          "[migration][integration]") {
  Origin a("A"), b("B");
  TempDir dir;
  Molt molt(config(dir, a.httpPort(), a.echoPort()));
  auto fd = connectTo(molt.port("web"));
  // A slow request, then two more behind it in the same write: they wait, unparsed, in the old
  // worker while the reload happens.
  REQUIRE(sendAll(fd.get(),
                  "GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /headers HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::this_thread::sleep_for(300ms);
  molt.rewriteConfig(config(dir, b.httpPort(), b.echoPort()));
  reloadTo(molt, 2);
  Reader reader(fd.get());
  Response slow = readResponse(reader);
  REQUIRE(slow.status == 200);
  REQUIRE(slow.header("x-origin") == "A");
  REQUIRE(slow.header("connection") != "close");
  Response second = readResponse(reader);
  REQUIRE(second.body == "B\n");
  Response third = readResponse(reader);
  REQUIRE(third.status == 200);
  REQUIRE(third.header("x-origin") == "B");
  REQUIRE(quiet(fd.get()));
  INFO(molt.process().output());
  REQUIRE_LINE(molt.process(), "generation 1 gone", 5s);
}

TEST_CASE("a receiver that dies while taking connections loses none of them",
          "[migration][integration]") {
  Origin origin;
  TempDir dir;
  std::string marker = dir.path() + "/kill-on-adopt";
  Molt molt(config(dir, origin.httpPort(), origin.echoPort(), "", "", 1),
            {"MOLT_TEST_KILL_ON_ADOPT=" + marker});
  std::uint16_t web = molt.port("web");
  auto keepAlive = connectTo(web);
  REQUIRE(ask(keepAlive.get()).status == 200);
  auto ws = openWebSocket(web, "/ws", "t");
  REQUIRE(webSocketEcho(ws.get(), "before") == "before");
  auto tcp = connectTo(molt.port("raw"));
  REQUIRE(sendAll(tcp.get(), "x"));
  REQUIRE(recvExactly(tcp.get(), 1) == "x");

  std::ofstream(marker) << "once";
  size_t from = molt.process().lines().size();
  reloadTo(molt, 2);
  INFO(molt.process().output());
  // Generation 2's only worker dies on the first connection it is handed; the senders keep all.
  REQUIRE_LINE(molt.process(), R"(generation 2: worker slot 0 pid \d+ died unexpectedly)", 10s,
               from);
  REQUIRE_LINE(molt.process(), R"(migration: 0 connections moved .* stay here)", 10s, from);
  REQUIRE(ask(keepAlive.get()).status == 200);
  REQUIRE(quiet(keepAlive.get(), 0ms));
  REQUIRE(webSocketEcho(ws.get(), "still the old one") == "still the old one");
  REQUIRE(sendAll(tcp.get(), "y"));
  REQUIRE(recvExactly(tcp.get(), 1) == "y");
  // The next reload moves what stayed (the marker is gone).
  reloadTo(molt, 3);
  REQUIRE_LINE(molt.process(), "generation 1 gone", 5s, from);
  REQUIRE(webSocketEcho(ws.get(), "moved at last") == "moved at last");
  REQUIRE(sendAll(tcp.get(), "z"));
  REQUIRE(recvExactly(tcp.get(), 1) == "z");
}

TEST_CASE("with migrate false a draining generation keeps its websocket as before",
          "[migration][integration]") {
  Origin origin;
  TempDir dir;
  Molt molt(config(dir, origin.httpPort(), origin.echoPort(), R"(, "migrate": false)"));
  auto ws = openWebSocket(molt.port("web"), "/ws", "t");
  REQUIRE(ws);
  size_t from = molt.process().lines().size();
  reloadTo(molt, 2);
  std::this_thread::sleep_for(1500ms);
  INFO(molt.process().output());
  REQUIRE_FALSE(molt.process().waitForLine("generation 1 gone", 0ms, from));
  REQUIRE_FALSE(molt.process().waitForLine("offered to the newest generation", 0ms, from));
  json proc = askApi(dir.path() + "/api.sock", R"({"cmd": "proc"})");
  REQUIRE(proc["generations"].size() == 2);
  REQUIRE(proc["generations"][0]["phase"] == "draining");
  REQUIRE(webSocketEcho(ws.get(), "old worker") == "old worker");
  ws.reset();
  REQUIRE_LINE(molt.process(), "generation 1 gone", 10s, from);
}

TEST_CASE("TLS connections stay with their generation and are counted",
          "[migration][integration][tls]") {
  Origin origin;
  TempDir dir;
  REQUIRE(makeCertificate(dir.path() + "/cert.pem", "localhost"));
  Molt molt(config(dir, origin.httpPort(), origin.echoPort(), "", dir.path() + "/cert.pem", 1));
  std::uint16_t tlsPort = 0;
  std::regex re(R"(frontend web listening on 127\.0\.0\.1:(\d+))");
  for (const auto& l : molt.process().lines()) {
    std::smatch m;
    if (std::regex_search(l, m, re)) tlsPort = static_cast<std::uint16_t>(std::stoi(m[1]));
  }
  REQUIRE(tlsPort != 0);  // the second bind listed is the TLS one
  auto tls = std::make_unique<TlsClient>(tlsPort, TlsClientOptions{"localhost"});
  REQUIRE(tls->connected());
  REQUIRE(
      tls->send("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"));
  std::string head;
  while (head.size() < 4096 && head.find("\r\n\r\n") == std::string::npos) {
    std::string byte = tls->receive(1);
    if (byte.empty()) break;
    head += byte;
  }
  REQUIRE(head.rfind("HTTP/1.1 101", 0) == 0);
  auto plain = openWebSocket(molt.port("web"), "/ws", "t");
  REQUIRE(plain);

  size_t from = molt.process().lines().size();
  reloadTo(molt, 2);
  INFO(molt.process().output());
  REQUIRE_LINE(molt.process(), R"(draining: 1 connections offered .*, 1 stay \(TLS\))", 5s, from);
  REQUIRE_LINE(molt.process(), R"(migration: 1 connections moved to the newest generation, 1 left)",
               5s, from);
  REQUIRE(webSocketEcho(plain.get(), "moved") == "moved");
  json proc = procWhen(dir, [](const json& p) {
    return p["generations"].size() == 2 && p["generations"][0]["workers"][0]["staying_tls"] == 1 &&
           p["generations"][0]["workers"][0]["migrated_out"] == 1;
  });
  REQUIRE(proc["generations"].size() == 2);
  REQUIRE(proc["generations"][0]["workers"][0]["staying_tls"] == 1);
  REQUIRE(proc["generations"][0]["workers"][0]["migrated_out"] == 1);
  std::string frame = maskedFrame("still TLS");
  REQUIRE(tls->send(frame));
  REQUIRE(tls->receive(2 + 9).substr(2) == "still TLS");
  tls.reset();
  REQUIRE_LINE(molt.process(), "generation 1 gone", 10s, from);
}

TEST_CASE("past max_old_generations what can move moves before the rest is stopped",
          "[migration][integration]") {
  Origin origin;
  TempDir dir;
  Molt molt(config(dir, origin.httpPort(), origin.echoPort(), R"(, "max_old_generations": 0)"));
  auto ws = openWebSocket(molt.port("web"), "/ws", "t");
  REQUIRE(ws);
  size_t from = molt.process().lines().size();
  reloadTo(molt, 2);
  INFO(molt.process().output());
  REQUIRE_LINE(molt.process(), "generation 1 gone", 5s, from);
  REQUIRE(webSocketEcho(ws.get(), "survived") == "survived");
}
