// End-to-end: the request-smuggling corpus (tools/smuggling/cases.cpp, issue 14) through molt in
// front of the project's origin, which counts every request it parses: molt answers each case as
// the corpus says, and the origin never parses more requests than the client sent.
#include <catch2/catch.hpp>
#include <map>

#include "tests/integration/http_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tools/smuggling/probe.hpp"

using namespace molt::test;

TEST_CASE("every case of the smuggling corpus: molt's answer, and no desync at the origin",
          "[http][integration][smuggling]") {
  Origin origin;
  Molt molt(R"({"global": {"workers": 1},
    "frontends": [{"name": "fe", "mode": "http", "bind": ["127.0.0.1:0"], "default_backend": "be",
                   "timeouts": {"http_request": "2s"}}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
            std::to_string(origin.httpPort()) + R"("}]}]})");
  std::uint16_t port = molt.port("fe");
  auto cases = molt::smuggling::cases();
  REQUIRE(cases.size() >= 100);
  std::map<std::string, unsigned> perCategory;
  for (const auto& c : cases) {
    INFO(c.category << ": " << c.name);
    auto o = molt::smuggling::probe(port, origin.httpPort(), c);
    INFO("status " << o.status << ", origin parsed " << o.requests << ", " << o.verdict);
    CHECK(o.status == c.status);
    CHECK(o.requests == c.reached);
    CHECK(o.verdict != "desync");
    if (c.status >= 400) CHECK(o.closed);
    ++perCategory[c.category];
  }
  REQUIRE(perCategory.size() >= 10);
  // The proxy still serves well-formed requests afterwards.
  REQUIRE(request(port, "/").body == "origin\n");
}
