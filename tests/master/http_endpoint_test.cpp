// The metrics endpoint's request parsing (master/http_endpoint.hpp) and scope names
// (master/metrics.hpp): what a client on the network may send.
#include "master/http_endpoint.hpp"

#include <catch2/catch.hpp>

#include "master/metrics.hpp"

using molt::master::HttpEndpoint;
using molt::master::HttpRequest;
using molt::master::Metrics;
using molt::master::Scope;

TEST_CASE("the endpoint parses GET and HEAD with a decoded path and query", "[master][metrics]") {
  HttpRequest r;
  REQUIRE(HttpEndpoint::parse("GET /metrics?scope=server&scope=a%2Cb&x HTTP/1.1\r\nHost: h\r\n\r\n",
                              r) == 0);
  REQUIRE(r.method == "GET");
  REQUIRE(r.path == "/metrics");
  REQUIRE(r.values("scope") == std::vector<std::string>{"server", "a,b"});
  REQUIRE(r.values("x") == std::vector<std::string>{""});
  REQUIRE(HttpEndpoint::parse("HEAD /%68ealthz HTTP/1.0\n\n", r) == 0);
  REQUIRE(r.path == "/healthz");
}

TEST_CASE("the endpoint refuses what is not a well-formed GET or HEAD", "[master][metrics]") {
  HttpRequest r;
  CHECK(HttpEndpoint::parse("POST / HTTP/1.1\r\n\r\n", r) == 405);
  CHECK(HttpEndpoint::parse("GET / HTTP/2.0\r\n\r\n", r) == 505);
  CHECK(HttpEndpoint::parse("GET / SPDY/3\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse("GET /\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse("GET  / HTTP/1.1\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse("GET http://x/ HTTP/1.1\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse("G(T / HTTP/1.1\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse("GET /a%2 HTTP/1.1\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse("GET /a%g0 HTTP/1.1\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse("GET /?a=%ZZ HTTP/1.1\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse("GET / HTTP/1.1\r\nno colon\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse("GET / HTTP/1.1\r\n: empty name\r\n\r\n", r) == 400);
  CHECK(HttpEndpoint::parse(std::string("GET /\x01 HTTP/1.1\r\n\r\n"), r) == 400);
  std::string many = "GET /?";
  for (int i = 0; i < 100; ++i) many += "a=1&";
  CHECK(HttpEndpoint::parse(many + " HTTP/1.1\r\n\r\n", r) == 400);
}

TEST_CASE("scrape scopes: repeated or comma-separated, all by default, unknown refused",
          "[master][metrics]") {
  unsigned scope = 0;
  std::string error;
  REQUIRE(Metrics::parseScope({}, scope, error));
  REQUIRE(scope == static_cast<unsigned>(Scope::All));
  REQUIRE(Metrics::parseScope({"server", "global,frontend"}, scope, error));
  REQUIRE(scope == (static_cast<unsigned>(Scope::Server) | static_cast<unsigned>(Scope::Global) |
                    static_cast<unsigned>(Scope::Frontend)));
  REQUIRE(Metrics::parseScope({""}, scope, error));
  REQUIRE(scope == 0);
  REQUIRE_FALSE(Metrics::parseScope({"backend,servers"}, scope, error));
  REQUIRE(error ==
          "unknown scope 'servers' (known: global, worker, frontend, backend, server, all)");
}
