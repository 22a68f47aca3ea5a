// Socket addresses as written in a config ("127.0.0.1:8080", "[::1]:443", "*:80", "host:port").
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace molt::common {

// A resolved IPv4 or IPv6 address with a port. Plain value type; safe to copy across fork/exec
// as text (text() round-trips through parseAddress).
struct SocketAddress {
  // Large enough for sockaddr_in and sockaddr_in6, the only families molt speaks; 28 bytes
  // rather than sockaddr_storage's 128 matters with a million servers.
  sockaddr_in6 storage{};
  socklen_t length = 0;

  int family() const { return reinterpret_cast<const sockaddr*>(&storage)->sa_family; }
  std::uint16_t port() const;
  void setPort(std::uint16_t port);
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  // "1.2.3.4:80" or "[::1]:80".
  std::string text() const;
  bool operator==(const SocketAddress& other) const;
};

enum class AddressUse {
  Bind,    // "*" and an empty host mean every IPv4 address; port 0 lets the kernel choose
  Connect  // a host is required; port 0 is refused
};

// Parses "HOST:PORT". HOST is an IPv4 literal, a bracketed IPv6 literal, "*" (bind only), or a
// name resolved once with getaddrinfo (first result, IPv4 preferred). Returns the address, or
// nullopt with `error` set to a short reason ("port out of range", "cannot resolve 'x': ...").
std::optional<SocketAddress> parseAddress(std::string_view text, AddressUse use,
                                          std::string& error);

}  // namespace molt::common
