// End-to-end: HTTP/1.1 through the real molt to the project's origin — routing, header
// rewriting, keep-alive and server pools, bodies, websockets, the access log (issue 4).
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/http_client.hpp"
#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;
using nlohmann::json;

namespace {

std::string server(const std::string& name, std::uint16_t port) {
  return R"({"name": ")" + name + R"(", "address": "127.0.0.1:)" + std::to_string(port) + R"("})";
}

// One http frontend "fe" on a kernel-chosen port, default backend "be" with `servers`.
std::string httpConfig(const std::string& servers, const std::string& global = "",
                       const std::string& backendExtra = "") {
  return R"({"global": {"workers": 1, "hard_stop_after": "20s")" + global + R"(},
    "frontends": [{"name": "fe", "mode": "http", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", )" +
         backendExtra + R"( "servers": [)" + servers + R"(]}]})";
}

// Four origins behind path, host, wildcard and host-map routes, plus a deny backend.
struct RoutedSetup {
  Origin a{"a"}, b{"b"}, c{"c"}, d{"d"};
  TempDir dir;
  std::string config() {
    std::string map = "# host value\n";
    for (int i = 0; i < 10'000; ++i)
      map += "host" + std::to_string(i) + ".map.test " + (i % 2 ? "b" : "c") + "\n";
    map += "denied.map.test deny\n";
    std::string mapPath = dir.write("hosts.map", map);
    return R"({"global": {"workers": 1},
      "frontends": [
        {"name": "fe", "mode": "http", "bind": ["127.0.0.1:0"],
         "routes": [{"path_prefix": "/.well-known/", "backend": "bk_a"},
                    {"host": "app.example.com", "backend": "bk_b"},
                    {"host": "*.example.com", "backend": "bk_c"},
                    {"host_map": ")" +
           mapPath + R"(", "backend_prefix": "bk_"}],
         "default_backend": "bk_d"},
        {"name": "bare", "mode": "http", "bind": ["127.0.0.1:)" +
           std::to_string(unusedPort()) + R"("],
         "routes": [{"host": "only.test", "backend": "bk_a"}]}],
      "backends": [
        {"name": "bk_a", "servers": [)" +
           server("a", a.httpPort()) + R"(]},
        {"name": "bk_b", "servers": [)" +
           server("b", b.httpPort()) + R"(]},
        {"name": "bk_c", "servers": [)" +
           server("c", c.httpPort()) + R"(]},
        {"name": "bk_d", "servers": [)" +
           server("d", d.httpPort()) + R"(]},
        {"name": "bk_deny", "deny": 403}]})";
  }
};

}  // namespace

TEST_CASE("requests are routed by path prefix, host, wildcard host, then the default backend",
          "[http][integration][routing]") {
  RoutedSetup setup;
  Molt molt(setup.config());
  std::uint16_t port = molt.port("fe");
  REQUIRE(request(port, "/.well-known/acme", "app.example.com").body == "a\n");
  REQUIRE(request(port, "/", "app.example.com").body == "b\n");
  REQUIRE(request(port, "/", "APP.EXAMPLE.COM:8080").body == "b\n");
  REQUIRE(request(port, "/", "x.y.example.com").body == "c\n");
  REQUIRE(request(port, "/", "example.com").body == "d\n");
  REQUIRE(request(port, "/", "unknown.test").body == "d\n");
  // An absolute-form target routes by its authority.
  REQUIRE(request(port, "http://app.example.com/", "ignored.test").body == "b\n");

  std::uint16_t bare = molt.port("bare");
  REQUIRE(request(bare, "/", "only.test").body == "a\n");
  Response none = request(bare, "/", "other.test");
  REQUIRE(none.status == 503);
  REQUIRE(none.body == "503 Service Unavailable\n");
}

TEST_CASE("routing cannot be dodged: a deny route holds for every spelling of its host",
          "[http][integration][routing][trust]") {
  RoutedSetup setup;
  Molt molt(setup.config());
  std::uint16_t port = molt.port("fe");
  // Before the fix, each of these reached bk_d (a trailing dot, or userinfo in an absolute-form
  // target, missed the route) while a server could still read the denied host in them.
  REQUIRE(request(port, "/", "denied.map.test.").status == 403);
  REQUIRE(request(port, "/", "DENIED.Map.Test.:80").status == 403);
  Response userinfo = request(port, "http://x@denied.map.test/", "denied.map.test");
  REQUIRE(userinfo.status == 400);
  REQUIRE(request(port, "http://denied.map.test./", "other.test").status == 403);
  // The server gets the host the request was routed on.
  Response routed = request(port, "/headers", "App.Example.COM.:8080");
  REQUIRE(routed.body.find("Host: app.example.com:8080\n") == 0);
  REQUIRE(routed.body.find("X-Forwarded-Host: App.Example.COM.:8080\n") != std::string::npos);
}

TEST_CASE("an Upgrade to h2c is not tunnelled: the request goes on as HTTP/1.1, then closes",
          "[http][integration][trust]") {
  Origin origin;
  Molt molt(httpConfig(server("o1", origin.httpPort())));
  Response r = request(molt.port("fe"), "/headers", "test",
                       "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                       "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n");
  REQUIRE(r.status == 200);
  // Before the fix the Upgrade reached the server, which could switch the connection to a
  // protocol molt does not route.
  REQUIRE(r.body.find("Upgrade") == std::string::npos);
  REQUIRE(r.body.find("HTTP2-Settings") == std::string::npos);
}

TEST_CASE("idle pooled server connections follow a server's new address",
          "[http][integration][changes][trust]") {
  Origin a{"a"}, b{"b"};
  TempDir dir;
  Molt molt(
      httpConfig(server("s", a.httpPort()), ", \"api_socket\": \"" + dir.path() + "/api.sock\""));
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  std::uint16_t port = molt.port("fe");
  for (int i = 0; i < 10; ++i) REQUIRE(request(port, "/").header("x-origin") == "a");
  json answer = askApiJson(dir.path() + "/api.sock",
                           {{"cmd", "server.set"},
                            {"backend", "be"},
                            {"server", "s"},
                            {"address", "127.0.0.1:" + std::to_string(b.httpPort())}});
  INFO(answer.dump());
  REQUIRE(answer["ok"] == true);
  // Before the fix the pool, keyed by the server whose address changed in place, kept handing out
  // connections to the old address under steady load.
  for (int i = 0; i < 20; ++i) REQUIRE(request(port, "/").header("x-origin") == "b");
}

TEST_CASE("a host map of 10k entries routes through the proxy, a deny backend answers itself",
          "[http][integration][host_map]") {
  RoutedSetup setup;
  Molt molt(setup.config());
  std::uint16_t port = molt.port("fe");
  for (int i : {0, 1, 4999, 5000, 9998, 9999}) {
    INFO("host " << i);
    REQUIRE(request(port, "/", "host" + std::to_string(i) + ".map.test").body ==
            (i % 2 ? "b\n" : "c\n"));
  }
  REQUIRE(request(port, "/", "host10000.map.test").body == "d\n");
  Response denied = request(port, "/", "denied.map.test");
  REQUIRE(denied.status == 403);
  REQUIRE(denied.body == "403 Forbidden\n");
}

// Host goes upstream as it was routed on (lower case, issue 13); X-Forwarded-Host keeps what the
// client sent.
TEST_CASE("the origin sees hop-by-hop fields removed and X-Forwarded-* added",
          "[http][integration][headers]") {
  Origin origin;
  Molt molt(httpConfig(server("o1", origin.httpPort())));
  Response r = request(molt.port("fe"), "/headers", "App.Test:8080",
                       "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: gopher\r\n"
                       "Keep-Alive: timeout=9\r\nConnection: X-Secret\r\nX-Secret: s\r\n"
                       "X-Case-Kept: MiXeD\r\n");
  REQUIRE(r.status == 200);
  REQUIRE(r.body ==
          "Host: app.test:8080\nX-Forwarded-For: 203.0.113.7, 127.0.0.1\nX-Case-Kept: MiXeD\n"
          "X-Forwarded-Proto: http\nX-Forwarded-Host: App.Test:8080\n");
  REQUIRE(r.header("x-origin") == "origin");
}

TEST_CASE("keep-alive is reused on both sides: many requests, one server connection",
          "[http][integration][keepalive]") {
  Origin origin;
  Molt molt(httpConfig(server("o1", origin.httpPort())));
  std::uint16_t port = molt.port("fe");
  std::uint64_t before = originConnections(origin.httpPort());
  {
    auto fd = connectTo(port);
    Reader reader(fd.get());
    for (int i = 0; i < 50; ++i) {
      REQUIRE(sendAll(fd.get(), "GET /size/100 HTTP/1.1\r\nHost: t\r\n\r\n"));
      Response r = readResponse(reader);
      REQUIRE(r.status == 200);
      REQUIRE(r.bodyLength == 100);
      REQUIRE_FALSE(r.has("connection"));
    }
  }
  // New client connections, one after another, take the pooled server connection.
  for (int c = 0; c < 10; ++c) {
    auto fd = connectTo(port);
    Reader reader(fd.get());
    for (int i = 0; i < 3; ++i) {
      REQUIRE(sendAll(fd.get(), "GET /size/10 HTTP/1.1\r\nHost: t\r\n\r\n"));
      REQUIRE(readResponse(reader).bodyLength == 10);
    }
  }
  std::uint64_t after = originConnections(origin.httpPort());
  REQUIRE(after - before - 1 == 1);  // the second /stats counts its own connection
}

TEST_CASE("pipelined requests are answered in order; Connection: close ends the connection",
          "[http][integration][keepalive]") {
  Origin origin;
  Molt molt(httpConfig(server("o1", origin.httpPort())));
  auto fd = connectTo(molt.port("fe"));
  REQUIRE(sendAll(fd.get(),
                  "GET /size/5 HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET /status/404 HTTP/1.1\r\nHost: t\r\n\r\n"
                  "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nping"
                  "GET /size/3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  Reader reader(fd.get());
  Response r1 = readResponse(reader), r2 = readResponse(reader), r3 = readResponse(reader),
           r4 = readResponse(reader);
  REQUIRE(r1.body == "abcde");
  REQUIRE(r2.status == 404);
  REQUIRE(r3.body == "ping");
  REQUIRE(r4.body == "abc");
  REQUIRE(r4.header("connection") == "close");
  REQUIRE(reader.closed());
}

TEST_CASE("HTTP/1.0 clients get keep-alive when asked and de-chunked bodies",
          "[http][integration][keepalive]") {
  Origin origin;
  Molt molt(httpConfig(server("o1", origin.httpPort())));
  auto fd = connectTo(molt.port("fe"));
  Reader reader(fd.get());
  REQUIRE(sendAll(fd.get(), "GET /size/4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  Response kept = readResponse(reader);
  REQUIRE(kept.body == "abcd");
  REQUIRE(kept.header("connection") == "keep-alive");
  // The origin answers /echo chunked; an HTTP/1.0 client gets the plain bytes, then EOF.
  REQUIRE(sendAll(fd.get(), "POST /echo HTTP/1.0\r\nContent-Length: 6\r\n\r\nbanana"));
  Response echoed = readResponse(reader);
  REQUIRE(echoed.status == 200);
  REQUIRE_FALSE(echoed.has("transfer-encoding"));
  REQUIRE(echoed.body == "banana");
  REQUIRE(reader.closed());
}

TEST_CASE("chunked request and response bodies stream through", "[http][integration][body]") {
  Origin origin;
  Molt molt(httpConfig(server("o1", origin.httpPort())));
  auto fd = connectTo(molt.port("fe"));
  std::string body;
  std::string chunks;
  for (int i = 1; i <= 20; ++i) {
    std::string piece(static_cast<size_t>(i * 997), static_cast<char>('a' + i));
    body += piece;
    char size[16];
    snprintf(size, sizeof size, "%zx", piece.size());
    chunks += std::string(size) + "\r\n" + piece + "\r\n";
  }
  REQUIRE(sendAll(fd.get(), "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                chunks + "0\r\nX-Trailer: yes\r\n\r\n"));
  Reader reader(fd.get());
  Response r = readResponse(reader);
  REQUIRE(r.status == 200);
  REQUIRE(r.header("transfer-encoding") == "chunked");
  REQUIRE(r.body == body);
}

TEST_CASE("100 MB request and response bodies pass with flat worker memory",
          "[http][integration][body][memory]") {
  Origin origin;
  Molt molt(httpConfig(server("o1", origin.httpPort())));
  std::uint16_t port = molt.port("fe");
  pid_t worker = molt.workerPids().at(0);
  std::atomic<bool> done{false};
  std::atomic<long> peak{0};
  std::thread sampler([&] {
    while (!done) {
      peak = std::max(peak.load(), rssKiB(worker));
      std::this_thread::sleep_for(5ms);
    }
  });
  constexpr std::uint64_t kSize = 100ull << 20;

  auto up = connectTo(port, 30s);
  std::uint64_t sentHash = kFnvStart;
  std::thread sender([&] {
    sendAll(up.get(), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(kSize) +
                          "\r\n\r\n");
    std::string block(1 << 20, '\0');
    for (std::uint64_t sent = 0; sent < kSize; sent += block.size()) {
      for (size_t i = 0; i < block.size(); i += 64) block[i] = static_cast<char>(sent / 4096 + i);
      sentHash = fnv(sentHash, block.data(), block.size());
      if (!sendAll(up.get(), block)) break;
    }
  });
  Reader upReader(up.get());
  std::uint64_t echoedHash = 0;
  Response echoed = readResponse(upReader, false, false, &echoedHash);
  sender.join();
  REQUIRE(echoed.bodyLength == kSize);
  REQUIRE(echoedHash == sentHash);

  auto down = connectTo(port, 30s);
  REQUIRE(
      sendAll(down.get(), "GET /size/" + std::to_string(kSize) + " HTTP/1.1\r\nHost: t\r\n\r\n"));
  Reader downReader(down.get());
  Response big = readResponse(downReader, false, false);
  done = true;
  sampler.join();
  REQUIRE(big.bodyLength == kSize);
  INFO("worker peak VmRSS " << peak << " KiB");
  REQUIRE(peak > 0);
  if (!sanitizedBuild()) REQUIRE(peak < 40 * 1024);
}

TEST_CASE("a websocket echoes through the proxy", "[http][integration][websocket]") {
  Origin origin;
  Molt molt(httpConfig(server("o1", origin.httpPort())));
  auto ws = openWebSocket(molt.port("fe"));
  REQUIRE(ws);
  for (const std::string& text :
       {std::string("hello"), std::string("through"), std::string(125, 'w')})
    REQUIRE(webSocketEcho(ws.get(), text) == text);
  ws.reset();  // the tunnel's log line is written when it ends
  REQUIRE_LINE(molt.process(), R"re(access fe=fe be=be srv=o1 .*"GET /ws HTTP/1.1" 101)re", 5s);
}

TEST_CASE("every request gets an access log line, in text or JSON", "[http][integration][log]") {
  Origin origin;
  SECTION("text") {
    Molt molt(httpConfig(server("o1", origin.httpPort())));
    REQUIRE(request(molt.port("fe"), "/size/7").bodyLength == 7);
    REQUIRE_LINE(molt.process(),
                 R"re(worker gen 1 slot 0: access fe=fe be=be srv=o1 client=127\.0\.0\.1:\d+ )re"
                 R"re("GET /size/7 HTTP/1\.1" 200 in=\d+ out=\d+ head=[\d.]+ms connect=[\d.]+ms )re"
                 R"re(response=[\d.]+ms total=[\d.]+ms)re",
                 5s);
  }
  SECTION("json") {
    Molt molt(httpConfig(server("o1", origin.httpPort()), R"(, "log_format": "json")"));
    REQUIRE(request(molt.port("fe"), "/size/7").bodyLength == 7);
    REQUIRE_LINE(
        molt.process(),
        R"re(^\{"time":"[^"]+","pid":\d+,"type":"access","frontend":"fe","backend":"be",)re"
        R"re("server":"o1","client":"127\.0\.0\.1:\d+","method":"GET","target":"/size/7",)re"
        R"re("version":"HTTP/1\.1","status":200,"bytes_in":\d+,"bytes_out":\d+,)re",
        5s);
  }
}

TEST_CASE("a refused server is retried on the next one", "[http][integration][retry]") {
  Origin origin;
  Molt molt(httpConfig(server("dead", unusedPort()) + ", " + server("live", origin.httpPort())));
  std::uint16_t port = molt.port("fe");
  for (int i = 0; i < 4; ++i) REQUIRE(request(port, "/").body == "origin\n");
  REQUIRE_LINE(molt.process(), "server dead .*connection refused", 5s);
}
