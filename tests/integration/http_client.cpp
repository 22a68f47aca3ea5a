#include "tests/integration/http_client.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <fstream>

#include "tests/support/net.hpp"

namespace molt::test {

int Reader::fill() {
  if (at_ > 0 && at_ == buffer_.size()) {
    buffer_.clear();
    at_ = 0;
  }
  char chunk[65536];
  for (;;) {
    ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? 0 : -1;
    buffer_.append(chunk, static_cast<size_t>(n));
    return 1;
  }
}

bool Reader::line(std::string& out) {
  for (;;) {
    size_t end = buffer_.find("\r\n", at_);
    if (end != std::string::npos) {
      out = buffer_.substr(at_, end - at_);
      at_ = end + 2;
      return true;
    }
    if (fill() <= 0) return false;
  }
}

std::uint64_t Reader::read(std::uint64_t n, const std::function<void(const char*, size_t)>& sink) {
  std::uint64_t done = 0;
  while (done < n) {
    if (at_ == buffer_.size() && fill() <= 0) break;
    size_t take = static_cast<size_t>(std::min<std::uint64_t>(n - done, buffer_.size() - at_));
    sink(buffer_.data() + at_, take);
    at_ += take;
    done += take;
  }
  return done;
}

std::uint64_t Reader::untilEof(const std::function<void(const char*, size_t)>& sink, bool* eof) {
  std::uint64_t done = 0;
  for (;;) {
    if (at_ < buffer_.size()) {
      sink(buffer_.data() + at_, buffer_.size() - at_);
      done += buffer_.size() - at_;
      at_ = buffer_.size();
    }
    int rc = fill();
    if (rc <= 0) {
      if (eof) *eof = rc == 0;
      return done;
    }
  }
}

bool Reader::closed() {
  if (at_ < buffer_.size()) return false;
  bool eof = false;
  std::uint64_t extra = untilEof([](const char*, size_t) {}, &eof);
  return eof && extra == 0;
}

std::string Response::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::uint64_t fnv(std::uint64_t hash, const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    hash ^= static_cast<unsigned char>(data[i]);
    hash *= 1099511628211ull;
  }
  return hash;
}

namespace {

bool readHead(Reader& reader, Response& r) {
  if (!reader.line(r.statusLine) || r.statusLine.size() < 12) return false;
  r.status = std::stoi(r.statusLine.substr(9, 3));
  std::string line;
  while (reader.line(line) && !line.empty()) {
    size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    size_t value = line.find_first_not_of(' ', colon + 1);
    r.headers.emplace(name, value == std::string::npos ? "" : line.substr(value));
  }
  return true;
}

}  // namespace

Response readResponse(Reader& reader, bool head, bool keepBody, std::uint64_t* bodyHash) {
  Response r;
  do {
    r = Response{};
    if (!readHead(reader, r)) return Response{};
  } while (r.status / 100 == 1 && r.status != 101);
  std::uint64_t hash = kFnvStart;
  auto sink = [&](const char* data, size_t n) {
    if (keepBody) r.body.append(data, n);
    hash = fnv(hash, data, n);
    r.bodyLength += n;
  };
  bool noBody = head || r.status == 204 || r.status == 304 || r.status == 101;
  if (noBody) {
  } else if (r.has("content-length")) {
    reader.read(std::stoull(r.header("content-length")), sink);
  } else if (r.header("transfer-encoding") == "chunked") {
    std::string line;
    while (reader.line(line)) {
      std::uint64_t size = std::stoull(line, nullptr, 16);
      if (size == 0) {
        while (reader.line(line) && !line.empty()) {
        }
        break;
      }
      reader.read(size, sink);
      reader.line(line);
    }
  } else {
    reader.untilEof(sink);
  }
  if (bodyHash) *bodyHash = hash;
  return r;
}

Response request(std::uint16_t port, const std::string& path, const std::string& host,
                 const std::string& extraHeaders) {
  auto fd = connectTo(port);
  if (!fd) return {};
  sendAll(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + extraHeaders +
                        "Connection: close\r\n\r\n");
  Reader reader(fd.get());
  return readResponse(reader);
}

std::uint64_t originConnections(std::uint16_t originPort) {
  Response r = request(originPort, "/stats");
  const std::string key = "\"connections_total\": ";
  size_t at = r.body.find(key);
  return at == std::string::npos ? 0 : std::stoull(r.body.substr(at + key.size()));
}

common::UniqueFd openWebSocket(std::uint16_t port, const std::string& path,
                               const std::string& host) {
  auto fd = connectTo(port);
  if (!fd) return {};
  sendAll(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: " + host +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n");
  // Byte by byte: frames may follow the head and must stay in the socket for webSocketEcho.
  std::string head = recvUntil(fd.get(), "\r\n\r\n");
  bool ok = head.rfind("HTTP/1.1 101", 0) == 0 &&
            head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos;
  return ok ? std::move(fd) : common::UniqueFd();
}

std::string webSocketEcho(int fd, const std::string& payload) {
  if (payload.size() > 125) return "<payload too long for this client>";
  const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  std::string frame;
  frame += static_cast<char>(0x81);
  frame += static_cast<char>(0x80 | payload.size());
  frame.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i)
    frame += static_cast<char>(payload[i] ^ static_cast<char>(mask[i % 4]));
  if (!sendAll(fd, frame)) return "<send failed>";
  std::string header = recvExactly(fd, 2);
  if (header.size() != 2 || static_cast<unsigned char>(header[0]) != 0x81) return "<bad frame>";
  return recvExactly(fd, static_cast<unsigned char>(header[1]) & 0x7f);
}

}  // namespace molt::test
