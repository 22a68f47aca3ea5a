// HttpConnection: what each path answers and how response bodies are produced.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <iterator>

#include "tools/origin/http_connection.hpp"
#include "tools/origin/http_util.hpp"

namespace molt::origin {
namespace {

constexpr std::size_t kSizeChunk = 64 * 1024;
// What one produceSize() call may queue: one writev's worth, so that a 10 GiB response to a fast
// reader cannot keep the loop from serving the other connections.
constexpr std::size_t kSizeTurn = kMaxWritePieces * kSizeChunk;
constexpr std::uint64_t kMaxSize = std::uint64_t{1} << 40;
constexpr std::uint64_t kMaxDelayMs = 3600 * 1000;
constexpr std::uint64_t kMaxSlowChunks = 1000 * 1000;

// 'a'..'z' repeating, 25 bytes longer than a chunk so a chunk can start at any letter.
const char* sizePattern() {
  static const auto pattern = [] {
    std::array<char, kSizeChunk + 26> bytes;
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>('a' + i % 26);
    return bytes;
  }();
  return pattern.data();
}

}  // namespace

void HttpConnection::route() {
  std::string_view path = targetPath(request_.target);
  if (path == "/ws") return routeWebSocket();
  // A declined upgrade (or CONNECT): what the client sends next may not be HTTP.
  if (parser_.upgrade) keepAlive_ = false;
  if (path.starts_with("/size/")) return routeSize(path.substr(6));
  if (path == "/headers") return respond(200, "text/plain", request_.headers);
  if (path == "/slow") return routeSlow();
  if (path == "/slow-body") return routeSlowBody();
  if (path.starts_with("/status/")) return routeStatus(path.substr(8));
  if (path == "/stats") return routeStats();
  if (path == "/close") keepAlive_ = false;
  respond(200, {}, shared_.name + "\n");
}

void HttpConnection::routeSize(std::string_view count) {
  std::optional<std::uint64_t> size = parseDecimal(count);
  if (!size || *size > kMaxSize) return respond(400, "text/plain", "bad size\n");
  writeHead(200, {}, *size);
  pending_ = Pending::Size;
  bodyLeft_ = request_.head ? 0 : *size;
  bodyOffset_ = 0;
  produceSize();
}

// Queues at most kSizeTurn bytes and never more than the write queue allows. When it stops
// short, a write callback is guaranteed to follow (the flush below, or writes already queued),
// and onWritten() calls it again.
void HttpConnection::produceSize() {
  std::size_t budget = kSizeTurn;
  while (bodyLeft_ > 0 && budget > 0 && out_.queued() < kWriteHighWater) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>({bodyLeft_, kSizeChunk, budget}));
    out_.appendRef(nullptr, sizePattern() + bodyOffset_ % 26, n);
    bodyLeft_ -= n;
    bodyOffset_ += n;
    budget -= n;
  }
  if (bodyLeft_ == 0) {
    finishResponse();
  } else if (out_.flush(FlushMode::Async) != 0) {
    close();
  }
}

void HttpConnection::routeSlow() {
  pending_ = Pending::Slow;
  startTimer(std::min(queryNumber(request_.target, "ms").value_or(0), kMaxDelayMs));
}

void HttpConnection::routeSlowBody() {
  intervalMs_ = std::min(queryNumber(request_.target, "ms").value_or(0), kMaxDelayMs);
  bodyLeft_ = std::min(queryNumber(request_.target, "chunks").value_or(1), kMaxSlowChunks);
  writeHead(200, {}, std::nullopt);
  if (bodyLeft_ == 0) {
    endChunks();
    return finishResponse();
  }
  pending_ = Pending::SlowBody;
  startTimer(intervalMs_);
}

void HttpConnection::routeStatus(std::string_view code) {
  std::optional<std::uint64_t> status = parseDecimal(code);
  if (!status || *status < 200 || *status > 599) return respond(400, "text/plain", "bad status\n");
  int value = static_cast<int>(*status);
  if (value == 204 || value == 304) return respond(value, {}, {});
  respond(value, "text/plain", fmt::format("{} {}\n", value, reasonPhrase(value)));
}

void HttpConnection::routeStats() {
  const HttpStats& stats = shared_.stats;
  respond(200, "application/json",
          fmt::format("{{\"connections_total\": {}, \"connections_open\": {}, "
                      "\"requests_total\": {}}}\n",
                      stats.connectionsTotal, stats.connectionsOpen, stats.requestsTotal));
}

void HttpConnection::routeWebSocket() {
  bool upgrade = parser_.upgrade && request_.upgradeWebsocket && request_.keyLength > 0 &&
                 parser_.method == HTTP_GET;
  if (!upgrade) {
    if (parser_.upgrade) keepAlive_ = false;
    return respond(400, "text/plain", "websocket upgrade required\n");
  }
  std::string_view key(request_.headers.data() + request_.keyStart, request_.keyLength);
  out_.append(fmt::format(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: {}\r\nX-Origin: {}\r\n\r\n",
      websocketAccept(key), shared_.name));
  phase_ = Phase::WebSocket;
  request_ = Request{};
}

void HttpConnection::startEcho() {
  writeHead(200, {}, std::nullopt);
  pending_ = Pending::Echo;
}

void HttpConnection::respond(int status, std::string_view contentType, std::string_view body) {
  writeHead(status, contentType, body.size());
  if (!request_.head) out_.append(body);
  finishResponse();
}

void HttpConnection::writeHead(int status, std::string_view contentType,
                               std::optional<std::uint64_t> length) {
  chunked_ = !length && request_.http11;
  if (!length && !chunked_) keepAlive_ = false;  // HTTP/1.0: the body ends with the connection
  fmt::memory_buffer head;
  auto to = std::back_inserter(head);
  fmt::format_to(to, "HTTP/1.1 {} {}\r\n", status, reasonPhrase(status));
  if (status == 204 || status == 304) {
    // These never carry a body, nor (for 204) a Content-Length.
  } else if (length) {
    fmt::format_to(to, "Content-Length: {}\r\n", *length);
  } else if (chunked_) {
    fmt::format_to(to, "Transfer-Encoding: chunked\r\n");
  }
  if (!contentType.empty()) fmt::format_to(to, "Content-Type: {}\r\n", contentType);
  fmt::format_to(to, "X-Origin: {}\r\n", shared_.name);
  if (!keepAlive_) {
    fmt::format_to(to, "Connection: close\r\n");
  } else if (!request_.http11) {
    fmt::format_to(to, "Connection: keep-alive\r\n");
  }
  fmt::format_to(to, "\r\n");
  out_.append(std::string_view(head.data(), head.size()));
}

void HttpConnection::writeChunk(Block* owner, const char* data, std::size_t length) {
  if (request_.head || length == 0) return;
  if (chunked_) {
    char size[24];
    auto end = fmt::format_to_n(size, sizeof size, "{:x}\r\n", length).out;
    out_.append(std::string_view(size, static_cast<std::size_t>(end - size)));
  }
  out_.appendRef(owner, data, length);
  if (chunked_) out_.append("\r\n");
}

void HttpConnection::endChunks() {
  if (chunked_ && !request_.head) out_.append("0\r\n\r\n");
}

void HttpConnection::finishResponse() {
  pending_ = Pending::None;
  request_.target = std::string();
  request_.headers = std::string();
  if (!keepAlive_) startDrain();
}

}  // namespace molt::origin
