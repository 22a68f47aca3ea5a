// Header rewriting between hops and the proxy's own responses (issue 4).
#include "worker/http/rewrite.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "worker/http/parser.hpp"

using namespace molt::worker;

namespace {

// Parses `text` (a complete head) with a parser of `kind`; fails the test if it does not parse.
void parseHead(HttpParser& parser, const std::string& text) {
  ParseResult r = parser.feed(text.data(), text.size());
  INFO(text);
  REQUIRE(r.status == ParseStatus::HeadComplete);
}

std::string rewriteRequest(const std::string& text, ForwardedInfo info = {"10.0.0.9", false, {}}) {
  HttpParser parser(HttpParser::Kind::Request);
  parseHead(parser, text);
  BufferPool pool;
  OutputChain out(pool);
  writeRequestHead(parser.head(), info, out);
  return out.str();
}

std::string rewriteResponse(const std::string& text, ResponseFraming framing) {
  HttpParser parser(HttpParser::Kind::Response);
  parseHead(parser, text);
  BufferPool pool;
  OutputChain out(pool);
  writeResponseHead(parser.head(), framing, out);
  return out.str();
}

}  // namespace

TEST_CASE("a forwarded request keeps its fields in order and case and gains X-Forwarded-*",
          "[http][rewrite]") {
  REQUIRE(rewriteRequest("GET /p?q HTTP/1.1\r\nhost: Example.com\r\nX-Custom: A b\r\n"
                         "accept: */*\r\n\r\n") ==
          "GET /p?q HTTP/1.1\r\nhost: Example.com\r\nX-Custom: A b\r\naccept: */*\r\n"
          "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: Example.com\r\n\r\n");
}

TEST_CASE("hop-by-hop fields are removed, with those Connection names", "[http][rewrite]") {
  std::string out = rewriteRequest(
      "POST /u HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop, Content-Length\r\n"
      "Keep-Alive: timeout=5\r\nProxy-Connection: close\r\nTE: trailers\r\nTrailer: X-T\r\n"
      "X-Hop: 1\r\nUpgrade: h2c\r\nX-Stay: 2\r\nContent-Length: 3\r\n\r\n");
  REQUIRE(out ==
          "POST /u HTTP/1.1\r\nHost: a\r\nX-Stay: 2\r\nContent-Length: 3\r\n"
          "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n");
}

TEST_CASE("X-Forwarded-For is appended to; X-Forwarded-Proto and -Host are replaced",
          "[http][rewrite]") {
  std::string out = rewriteRequest(
      "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: a:8080\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-For: 2.2.2.2, 3.3.3.3\r\nX-Forwarded-Host: evil\r\n\r\n",
      {"::1", true, {}});
  REQUIRE(out ==
          "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, ::1\r\nHost: a:8080\r\n"
          "X-Forwarded-Proto: https\r\nX-Forwarded-Host: a:8080\r\n\r\n");
}

TEST_CASE("chunked requests are re-framed; upgrades keep Upgrade; HTTP/1.0 goes out as 1.1",
          "[http][rewrite]") {
  REQUIRE(rewriteRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n") ==
          "POST / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
          "X-Forwarded-Host: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  REQUIRE(rewriteRequest("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                         "Upgrade: websocket\r\n\r\n") ==
          "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nX-Forwarded-For: 10.0.0.9\r\n"
          "X-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\nConnection: upgrade\r\n\r\n");
  REQUIRE(
      rewriteRequest("GET / HTTP/1.0\r\n\r\n") ==
      "GET / HTTP/1.1\r\nHost: \r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n\r\n");
}

TEST_CASE("an absolute-form target becomes origin form and its authority the Host",
          "[http][rewrite]") {
  REQUIRE(rewriteRequest("GET http://b.example:81/x?y HTTP/1.1\r\nHost: other\r\n\r\n") ==
          "GET /x?y HTTP/1.1\r\nHost: b.example:81\r\nX-Forwarded-For: 10.0.0.9\r\n"
          "X-Forwarded-Proto: http\r\nX-Forwarded-Host: b.example:81\r\n\r\n");
  REQUIRE(targetPath("http://h") == "/");
  REQUIRE(targetPath("/a/b?c#d") == "/a/b");
  REQUIRE(targetAuthority("/a") == "");
}

TEST_CASE("a forwarded response loses hop-by-hop fields and states its framing",
          "[http][rewrite]") {
  std::string head =
      "HTTP/1.1 200 Fine\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nTransfer-Encoding: chunked\r\n"
      "Keep-Alive: timeout=1\r\nSet-Cookie: a=b\r\n\r\n";
  REQUIRE(rewriteResponse(head, {.chunked = true}) ==
          "HTTP/1.1 200 Fine\r\nSet-Cookie: a=b\r\nTransfer-Encoding: chunked\r\n\r\n");
  REQUIRE(rewriteResponse(head, {.chunked = false, .close = true}) ==
          "HTTP/1.1 200 Fine\r\nSet-Cookie: a=b\r\nConnection: close\r\n\r\n");
  REQUIRE(rewriteResponse("HTTP/1.1 204 \r\n\r\n", {.keepAlive = true}) ==
          "HTTP/1.1 204 \r\nConnection: keep-alive\r\n\r\n");
  REQUIRE(rewriteResponse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
                          {}) ==
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n"
          "Connection: upgrade\r\n\r\n");
}

TEST_CASE("the proxy's own responses are small and correct", "[http][rewrite]") {
  BufferPool pool;
  OutputChain out(pool);
  writeLocalResponse(503, {.close = true}, false, out);
  REQUIRE(out.str() ==
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n"
          "Connection: close\r\n\r\n503 Service Unavailable\n");
  out.clear();
  writeLocalResponse(403, {}, true, out);
  REQUIRE(out.str() ==
          "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n");
}

TEST_CASE("an output chain spans pooled buffers and gives them back", "[http][rewrite]") {
  BufferPool pool;
  {
    OutputChain out(pool);
    std::string big(40 * 1024, 'x');
    out.append(big);
    REQUIRE(out.slices().size() == 3);
    REQUIRE(out.str() == big);
    REQUIRE(pool.inUse() == 3);
  }
  REQUIRE(pool.inUse() == 0);
}

TEST_CASE("the Host sent is the host routed on; X-Forwarded-Host keeps what the client named",
          "[http][rewrite]") {
  REQUIRE(rewriteRequest("GET / HTTP/1.1\r\nHost: App.Example.COM.:8080\r\n\r\n",
                         {"10.0.0.9", false, "app.example.com:8080"}) ==
          "GET / HTTP/1.1\r\nHost: app.example.com:8080\r\nX-Forwarded-For: 10.0.0.9\r\n"
          "X-Forwarded-Proto: http\r\nX-Forwarded-Host: App.Example.COM.:8080\r\n\r\n");
  REQUIRE(rewriteRequest("GET http://B.example./x HTTP/1.1\r\nHost: other\r\n\r\n",
                         {"10.0.0.9", false, "b.example"}) ==
          "GET /x HTTP/1.1\r\nHost: b.example\r\nX-Forwarded-For: 10.0.0.9\r\n"
          "X-Forwarded-Proto: http\r\nX-Forwarded-Host: B.example.\r\n\r\n");
}
