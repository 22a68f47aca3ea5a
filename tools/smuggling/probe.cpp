#include "tools/smuggling/probe.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "common/unique_fd.hpp"

namespace molt::smuggling {
namespace {

common::UniqueFd connectLoopback(std::uint16_t port) {
  common::UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return common::UniqueFd();
  return fd;
}

// Reads until EOF or `quietMs` without bytes (at most `totalMs`). True when EOF ended it.
bool readFor(int fd, std::string& out, int quietMs, int totalMs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(totalMs);
  char buffer[16384];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, quietMs) <= 0) return false;
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return true;
    out.append(buffer, static_cast<size_t>(n));
  }
  return false;
}

bool sendAll(int fd, const std::string& data) {
  std::size_t at = 0;
  while (at < data.size()) {
    ssize_t n = send(fd, data.data() + at, data.size() - at, MSG_NOSIGNAL);
    if (n <= 0) return false;
    at += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

unsigned originRequests(std::uint16_t originPort) {
  auto fd = connectLoopback(originPort);
  if (!fd || !sendAll(fd.get(), "GET /stats HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n"))
    return 0;
  std::string response;
  readFor(fd.get(), response, 2000, 5000);
  auto at = response.find("\"requests_total\": ");
  return at == std::string::npos ? 0 : static_cast<unsigned>(std::stoul(response.substr(at + 18)));
}

Outcome probe(std::uint16_t proxyPort, std::uint16_t originPort, const Case& c) {
  Outcome out;
  unsigned before = originRequests(originPort);
  {
    auto fd = connectLoopback(proxyPort);
    if (fd) {
      sendAll(fd.get(), c.request);
      // No more from the client: a proxy waiting for more of a request gives up or answers.
      shutdown(fd.get(), SHUT_WR);
      std::string response;
      out.closed = readFor(fd.get(), response, 400, 3000);
      // The first final answer: interim ones (100 Continue) are skipped.
      std::size_t at = 0;
      while (response.compare(at, 7, "HTTP/1.") == 0 && response.size() > at + 12) {
        out.status = std::atoi(response.c_str() + at + 9);
        if (out.status >= 200) break;
        std::size_t end = response.find("\r\n\r\n", at);
        if (end == std::string::npos) break;
        at = end + 4;
      }
    }
  }
  // Whatever the proxy sent the origin was sent before it answered; give the origin a moment to
  // parse a second request queued behind the first.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  unsigned after = originRequests(originPort);
  out.requests = after > before ? after - before - 1 : 0;  // its own /stats request counts
  out.verdict = out.requests > c.sent ? "desync"
                : out.requests == 0   ? "refused"
                : out.status >= 400   ? "cut off"
                                      : "forwarded";
  return out;
}

}  // namespace molt::smuggling
