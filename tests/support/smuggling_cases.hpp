// Malformed requests a proxy must refuse (400, connection closed) rather than read one way while
// the next hop reads another: the request smuggling table, shared by the parser's unit tests
// (tests/worker/http/parser_test.cpp) and the end-to-end tests (tests/integration/http_test.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace molt::test {

struct SmugglingCase {
  std::string name;
  std::string request;
};

inline std::vector<SmugglingCase> smugglingCases() {
  using namespace std::string_literals;
  const std::string post = "POST /echo HTTP/1.1\r\nHost: a\r\n";
  const std::string chunkedHead = post + "Transfer-Encoding: chunked\r\n\r\n";
  return {
      {"Content-Length and Transfer-Encoding",
       post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"Transfer-Encoding then Content-Length",
       post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
      {"repeated Content-Length, same value",
       post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
      {"repeated Content-Length, different values",
       post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
      {"Content-Length list", post + "Content-Length: 5, 5\r\n\r\nhello"},
      {"Content-Length with a sign", post + "Content-Length: +5\r\n\r\nhello"},
      {"negative Content-Length", post + "Content-Length: -1\r\n\r\n"},
      {"hexadecimal Content-Length", post + "Content-Length: 0x5\r\n\r\nhello"},
      {"Content-Length with inner space", post + "Content-Length: 5 5\r\n\r\nhello"},
      {"Content-Length overflow", post + "Content-Length: 99999999999999999999999\r\n\r\n"},
      {"Transfer-Encoding gzip", post + "Transfer-Encoding: gzip\r\n\r\nhello"},
      {"Transfer-Encoding gzip, chunked",
       post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
      {"Transfer-Encoding chunked, gzip",
       post + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"},
      {"Transfer-Encoding xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
      {"Transfer-Encoding chunked, chunked",
       post + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"},
      {"Transfer-Encoding twice",
       post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"Transfer-Encoding in HTTP/1.0",
       "POST /echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"space before the colon", post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
      {"obs-fold of Transfer-Encoding", post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
      {"obs-fold of another field", post + "X-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n"},
      {"whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"},
      {"chunk size not hexadecimal", chunkedHead + "zz\r\nhello\r\n0\r\n\r\n"},
      {"chunk size with 0x", chunkedHead + "0x5\r\nhello\r\n0\r\n\r\n"},
      {"chunk size overflow", chunkedHead + "fffffffffffffffff1\r\nhello\r\n0\r\n\r\n"},
      {"chunk size with trailing space", chunkedHead + "5 \r\nhello\r\n0\r\n\r\n"},
      {"chunk size line ended by bare LF", chunkedHead + "5\nhello\r\n0\r\n\r\n"},
      {"chunk data not followed by CRLF", chunkedHead + "5\r\nhelloXX0\r\n\r\n"},
      {"chunk data followed by bare LF", chunkedHead + "5\r\nhello\n0\r\n\r\n"},
      {"last chunk ended by bare LF", chunkedHead + "5\r\nhello\r\n0\n\n"},
      {"obs-fold in a trailer", chunkedHead + "0\r\nX-T: a\r\n b\r\n\r\n"},
      {"bare LF ending a field line", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"},
      {"bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n"},
      {"bare CR inside a field line", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"},
      {"NUL in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"s},
      {"NUL in the target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"s},
      {"control character in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n"},
      {"DEL in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f c\r\n\r\n"},
      {"invalid character in a field name", "GET / HTTP/1.1\r\nHost: a\r\nX(A: b\r\n\r\n"},
      {"space inside a field name", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n"},
      {"empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"},
      {"two spaces in the request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"tab in the request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"target not in origin form", "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"},
      {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
      {"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
      {"Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
      {"lower-case protocol name", "GET / http/1.1\r\nHost: a\r\n\r\n"},
  };
}

}  // namespace molt::test
