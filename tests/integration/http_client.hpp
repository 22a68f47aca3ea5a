// Test support for the http tests: a buffered reader over a blocking socket, HTTP/1.1 responses
// (Content-Length, chunked, or until EOF), the origin's /stats, worker memory, and a websocket.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/unique_fd.hpp"

namespace molt::test {

// Reads from a blocking socket (with the receive timeout connectTo set) through a buffer.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}
  // A line without its CRLF; false on EOF, error or timeout before the CRLF.
  bool line(std::string& out);
  // Exactly n bytes (fewer on EOF/timeout) handed to `sink` in pieces.
  std::uint64_t read(std::uint64_t n, const std::function<void(const char*, size_t)>& sink);
  // Everything until EOF to `sink`; returns the count; `eof` says whether a clean EOF ended it.
  std::uint64_t untilEof(const std::function<void(const char*, size_t)>& sink, bool* eof = nullptr);
  // True when the peer closed the connection (waits up to the socket's timeout).
  bool closed();

 private:
  int fill();  // 1: bytes added, 0: EOF, -1: error or timeout
  int fd_;
  std::string buffer_;
  size_t at_ = 0;
};

struct Response {
  int status = 0;  // 0: no response (closed or timed out)
  std::string statusLine;
  std::multimap<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::uint64_t bodyLength = 0;
  bool has(const std::string& name) const { return headers.count(name) > 0; }
  std::string header(const std::string& name) const;
};

// Reads one response. `keepBody` false: count and hash the body without keeping it. `head`:
// the request was HEAD (no body whatever the fields say). Interim (1xx) responses are skipped.
Response readResponse(Reader& reader, bool head = false, bool keepBody = true,
                      std::uint64_t* bodyHash = nullptr);

// FNV-1a over bytes, chainable.
std::uint64_t fnv(std::uint64_t hash, const char* data, size_t n);
constexpr std::uint64_t kFnvStart = 1469598103934665603ull;

// A request on a new connection; the response (Connection: close added).
Response request(std::uint16_t port, const std::string& path, const std::string& host = "test",
                 const std::string& extraHeaders = "");

// connections_total from the origin's /stats, asked directly (that request's own connection
// counts in the number returned).
std::uint64_t originConnections(std::uint16_t originPort);

// Opens a websocket to `path` through `port`; invalid fd unless the handshake got a 101 with the
// right Sec-WebSocket-Accept.
common::UniqueFd openWebSocket(std::uint16_t port, const std::string& path = "/ws",
                               const std::string& host = "ws.test");
// Sends one masked text frame and reads the echoed (unmasked) frame's payload.
std::string webSocketEcho(int fd, const std::string& payload);

}  // namespace molt::test
