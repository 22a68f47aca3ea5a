#include "common/address.hpp"

#include <catch2/catch.hpp>

using molt::common::AddressUse;
using molt::common::parseAddress;
using molt::common::SocketAddress;

namespace {

std::string addressError(std::string_view text, AddressUse use = AddressUse::Connect) {
  std::string error;
  auto a = parseAddress(text, use, error);
  REQUIRE_FALSE(a);
  return error;
}

SocketAddress address(std::string_view text, AddressUse use = AddressUse::Connect) {
  std::string error;
  auto a = parseAddress(text, use, error);
  INFO(error);
  REQUIRE(a);
  return *a;
}

}  // namespace

TEST_CASE("IPv4 and IPv6 literals parse and print back", "[address]") {
  SocketAddress v4 = address("127.0.0.1:8080");
  CHECK(v4.family() == AF_INET);
  CHECK(v4.port() == 8080);
  CHECK(v4.length == sizeof(sockaddr_in));
  CHECK(v4.text() == "127.0.0.1:8080");
  CHECK(address("0.0.0.0:1").text() == "0.0.0.0:1");
  CHECK(address("255.255.255.255:65535").text() == "255.255.255.255:65535");
  CHECK(address("10.200.3.40:80").text() == "10.200.3.40:80");
  SocketAddress v6 = address("[::1]:443");
  CHECK(v6.family() == AF_INET6);
  CHECK(v6.port() == 443);
  CHECK(v6.length == sizeof(sockaddr_in6));
  CHECK(v6.text() == "[::1]:443");
  CHECK(address("[2001:DB8::0:1]:80").text() == "[2001:db8::1]:80");
}

TEST_CASE("text round-trips through parseAddress", "[address]") {
  for (const char* text : {"10.1.2.3:1", "[fe80::1:2]:65535", "0.0.0.0:80"}) {
    SocketAddress a = address(text, AddressUse::Bind);
    CHECK(address(a.text(), AddressUse::Bind) == a);
  }
}

TEST_CASE("a wildcard or empty host binds every IPv4 address", "[address]") {
  CHECK(address("*:80", AddressUse::Bind).text() == "0.0.0.0:80");
  CHECK(address(":80", AddressUse::Bind).text() == "0.0.0.0:80");
  CHECK(addressError("*:80") == "missing host");
}

TEST_CASE("port 0 is allowed for binding only", "[address]") {
  CHECK(address("127.0.0.1:0", AddressUse::Bind).port() == 0);
  CHECK(addressError("127.0.0.1:0") == "port out of range");
}

TEST_CASE("address errors name the problem", "[address]") {
  CHECK(addressError("127.0.0.1") == "missing port");
  CHECK(addressError("127.0.0.1:") == "missing port");
  CHECK(addressError("[::1]") == "missing port");
  CHECK(addressError("127.0.0.1:65536") == "port out of range");
  CHECK(addressError("127.0.0.1:99999999999999999999") == "port out of range");
  CHECK(addressError("127.0.0.1:http") == "bad port 'http'");
  CHECK(addressError("[::g]:80") == "bad IPv6 literal");
  CHECK(addressError("[::1:80") == "bad IPv6 literal (missing ']')");
  CHECK(addressError("::1:80") == "bad IPv6 literal (write it in brackets: \"[::1]:80\")");
  CHECK(addressError("1.2.3.256:80") == "bad IPv4 literal");
  CHECK(addressError("127.1:80") == "bad IPv4 literal");
  CHECK(addressError("a b:80") == "bad host name 'a b'");
  CHECK(addressError("") == "empty address");
}

TEST_CASE("names are resolved, IPv4 first", "[address]") {
  SocketAddress a = address("localhost:25");
  CHECK(a.family() == AF_INET);
  CHECK(a.text() == "127.0.0.1:25");
}

TEST_CASE("an unresolvable name reports getaddrinfo's reason", "[address]") {
  std::string error = addressError("no-such-host.invalid:80");
  CHECK_THAT(error, Catch::StartsWith("cannot resolve 'no-such-host.invalid': "));
  CHECK(error.size() > std::string("cannot resolve 'no-such-host.invalid': ").size());
}

TEST_CASE("addresses compare by family, address and port", "[address]") {
  CHECK(address("127.0.0.1:80") == address("127.0.0.1:80"));
  CHECK_FALSE(address("127.0.0.1:80") == address("127.0.0.1:81"));
  CHECK_FALSE(address("127.0.0.1:80") == address("127.0.0.2:80"));
  CHECK_FALSE(address("[::ffff:127.0.0.1]:80") == address("127.0.0.1:80"));
  SocketAddress a = address("127.0.0.1:80");
  a.setPort(9);
  CHECK(a.text() == "127.0.0.1:9");
}
