#include "master/listener.hpp"

#include <catch2/catch.hpp>

using molt::master::ListenerSet;

namespace {

molt::common::BindConfig loopbackAnyPort() {
  molt::common::BindConfig bind;
  std::string error;
  bind.address = *molt::common::parseAddress("127.0.0.1:0", molt::common::AddressUse::Bind, error);
  bind.text = "127.0.0.1:0";
  bind.backlog = 16;
  return bind;
}

}  // namespace

TEST_CASE("a listener is reused by address while a generation holds it", "[master][listener]") {
  ListenerSet set;
  std::string error;
  auto bind = loopbackAnyPort();
  auto first = set.acquire(bind, bind.text, error);
  REQUIRE(first);
  REQUIRE(first->bound.port() != 0);
  auto second = set.acquire(bind, bind.text, error);
  REQUIRE(second == first);  // same socket: no rebind, no lost SYN
}

TEST_CASE("two port-0 binds with different keys get two sockets", "[master][listener]") {
  ListenerSet set;
  std::string error;
  auto bind = loopbackAnyPort();
  auto a = set.acquire(bind, "127.0.0.1:0 (fe bind 0)", error);
  auto b = set.acquire(bind, "127.0.0.1:0 (other bind 0)", error);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(a != b);
  REQUIRE(a->bound.port() != b->bound.port());
  REQUIRE(set.acquire(bind, "127.0.0.1:0 (fe bind 0)", error) == a);
}

TEST_CASE("a listener no generation holds is closed and forgotten", "[master][listener]") {
  ListenerSet set;
  std::string error;
  auto bind = loopbackAnyPort();
  auto first = set.acquire(bind, bind.text, error);
  int port = first->bound.port();
  first.reset();
  set.prune();
  REQUIRE(set.size() == 0);
  auto again = set.acquire(bind, bind.text, error);
  REQUIRE(again);
  (void)port;
}

TEST_CASE("binding an address in use names the syscall and the address", "[master][listener]") {
  ListenerSet set;
  std::string error;
  auto bind = loopbackAnyPort();
  auto first = set.acquire(bind, bind.text, error);
  molt::common::BindConfig same = bind;
  same.text = first->bound.text();
  same.address = first->bound;
  ListenerSet other;
  auto clash = other.acquire(same, same.text, error);
  REQUIRE_FALSE(clash);
  REQUIRE(error == "bind(" + same.text + "): Address already in use");
}
