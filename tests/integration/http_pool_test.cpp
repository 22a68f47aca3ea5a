// The worker's pool of idle server connections under bursts (issue 16: with 64 idle connections
// kept per server, 100 concurrent clients made molt reconnect on about one request in ten).
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/integration/http_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;

TEST_CASE("a burst of 100 exchanges finds its server connections pooled the next time",
          "[http][integration][pool]") {
  constexpr int kClients = 100, kRounds = 5;
  Origin origin;
  Molt molt(R"({"global": {"workers": 1, "hard_stop_after": "20s"},
    "frontends": [{"name": "fe", "mode": "http", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
            std::to_string(origin.httpPort()) + R"("}]}]})");
  std::uint16_t port = molt.port("fe");
  std::vector<molt::common::UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(connectTo(port));
    REQUIRE(clients.back().get() >= 0);
  }
  // Each round: every client asks at once for an answer the origin holds back 200 ms, so that
  // all the exchanges are in flight together and end within the same moment.
  const std::string ask = "GET /slow?ms=200 HTTP/1.1\r\nHost: test\r\n\r\n";
  std::uint64_t before = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (auto& fd : clients) REQUIRE(sendAll(fd.get(), ask));
    for (auto& fd : clients) {
      Reader reader(fd.get());
      Response r = readResponse(reader);
      REQUIRE(r.status == 200);
    }
    if (round == 0) before = originConnections(origin.httpPort());
  }
  // The first round opened a connection per exchange; the later ones took them from the pool.
  std::uint64_t after = originConnections(origin.httpPort());
  INFO("origin connections after the first round " << before << ", after " << kRounds);
  CHECK(before >= kClients);
  CHECK(after - before <= 5);  // the /stats requests' own connections, and a little slack
}
