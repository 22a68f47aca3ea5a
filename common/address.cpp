#include "common/address.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

namespace molt::common {

std::uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

void SocketAddress::setPort(std::uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
}

// IPv4 by hand: glibc's inet_ntop formats it with sprintf, and an HTTP/2 stream's exchange asks
// for its client's address text once per request.
std::string SocketAddress::text() const {
  char buf[INET6_ADDRSTRLEN + 8] = {};
  if (family() == AF_INET) {
    auto octets = reinterpret_cast<const unsigned char*>(
        &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr);
    char* at = buf;
    for (int i = 0; i < 4; ++i) {
      at = std::to_chars(at, buf + sizeof buf, octets[i]).ptr;
      *at++ = i < 3 ? '.' : ':';
    }
    at = std::to_chars(at, buf + sizeof buf, port()).ptr;
    return std::string(buf, static_cast<std::size_t>(at - buf));
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port());
  }
  return "";
}

bool SocketAddress::operator==(const SocketAddress& other) const {
  if (family() != other.family() || port() != other.port()) return false;
  if (family() == AF_INET) {
    auto& a = reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr;
    auto& b = reinterpret_cast<const sockaddr_in*>(&other.storage)->sin_addr;
    return a.s_addr == b.s_addr;
  }
  if (family() == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    auto* b = reinterpret_cast<const sockaddr_in6*>(&other.storage);
    return std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0 &&
           a->sin6_scope_id == b->sin6_scope_id;
  }
  return true;  // both unset
}

namespace {

std::nullopt_t fail(std::string& error, std::string message) {
  error = std::move(message);
  return std::nullopt;
}

struct HostPort {
  std::string_view host, port;
  bool bracketed = false;  // the host was written in brackets: an IPv6 literal
};

std::optional<HostPort> splitHostPort(std::string_view text, std::string& error) {
  HostPort out;
  out.bracketed = text[0] == '[';
  if (out.bracketed) {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos) return fail(error, "bad IPv6 literal (missing ']')");
    out.host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.empty()) return fail(error, "missing port");
    if (rest[0] != ':') return fail(error, "expected ':' and a port after ']'");
    out.port = rest.substr(1);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail(error, "missing port");
    out.host = text.substr(0, colon);
    out.port = text.substr(colon + 1);
    if (out.host.find(':') != std::string_view::npos) {
      return fail(error, "bad IPv6 literal (write it in brackets: \"[::1]:80\")");
    }
  }
  if (out.port.empty()) return fail(error, "missing port");
  return out;
}

std::optional<std::uint16_t> parsePort(std::string_view text, AddressUse use, std::string& error) {
  unsigned long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return fail(error, "bad port '" + std::string(text) + "'");
    if (value <= 65535) value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (value > 65535 || (value == 0 && use == AddressUse::Connect)) {
    return fail(error, "port out of range");
  }
  return static_cast<std::uint16_t>(value);
}

bool isHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// getaddrinfo, first IPv4 result if any, else the first result.
std::optional<SocketAddress> resolve(const std::string& host, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    const char* why = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    return fail(error, "cannot resolve '" + host + "': " + why);
  }
  const addrinfo* pick = list;
  for (const addrinfo* ai = list; ai; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      pick = ai;
      break;
    }
  }
  SocketAddress out;
  if (pick->ai_addrlen > sizeof out.storage) return fail(error, "unsupported address family");
  std::memcpy(&out.storage, pick->ai_addr, pick->ai_addrlen);
  out.length = pick->ai_addrlen;
  freeaddrinfo(list);
  return out;
}

std::optional<SocketAddress> parseHost(std::string_view host, bool bracketed, AddressUse use,
                                       std::string& error) {
  SocketAddress out;
  std::string h(host);
  if (bracketed) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) != 1) return fail(error, "bad IPv6 literal");
    v6->sin6_family = AF_INET6;
    out.length = sizeof(sockaddr_in6);
    return out;
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  v4->sin_family = AF_INET;
  out.length = sizeof(sockaddr_in);
  if (h.empty() || h == "*") {
    if (use == AddressUse::Connect) return fail(error, "missing host");
    v4->sin_addr.s_addr = htonl(INADDR_ANY);
    return out;
  }
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) return out;
  // getaddrinfo would accept inet_aton's legacy forms ("127.1"); refuse them as literals.
  if (h.find_first_not_of("0123456789.") == std::string::npos)
    return fail(error, "bad IPv4 literal");
  for (char c : h) {
    if (!isHostNameChar(c)) return fail(error, "bad host name '" + h + "'");
  }
  return resolve(h, error);
}

}  // namespace

std::optional<SocketAddress> parseAddress(std::string_view text, AddressUse use,
                                          std::string& error) {
  if (text.empty()) return fail(error, "empty address");
  std::optional<HostPort> split = splitHostPort(text, error);
  if (!split) return std::nullopt;
  std::optional<std::uint16_t> port = parsePort(split->port, use, error);
  if (!port) return std::nullopt;
  std::optional<SocketAddress> out = parseHost(split->host, split->bracketed, use, error);
  if (out) out->setPort(*port);
  return out;
}

}  // namespace molt::common
