#include "worker/net/spares.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "worker/http/parser.hpp"

using molt::worker::releaseSpares;
namespace spares = molt::worker::spares;

TEST_CASE("a given buffer is taken back warm, within the bounds", "[worker][spares]") {
  releaseSpares();
  using Strings = spares::Buffers<std::string, struct TestTag, 600, 1024>;
  std::string a(100, 'a'), b(200, 'b'), c(300, 'c'), huge(5000, 'h');
  const char* aData = a.data();
  Strings::give(a);
  REQUIRE(a.empty());
  Strings::give(b);
  Strings::give(c);     // over the budget: freed, not kept
  Strings::give(huge);  // over the size: freed
  std::string taken;
  Strings::take(taken);
  REQUIRE(taken.empty());
  REQUIRE(taken.capacity() >= 200);
  std::string second;
  Strings::take(second);
  REQUIRE(second.data() == aData);
  std::string none;
  Strings::take(none);  // the list is empty now
  REQUIRE(none.capacity() < 100);

  std::string own;
  own.reserve(64);
  Strings::give(taken);
  Strings::take(own);  // a buffer of its own already: left alone
  REQUIRE(own.capacity() < 200);
  releaseSpares();
  std::string afterRelease;
  Strings::take(afterRelease);
  REQUIRE(afterRelease.capacity() < 200);
}

namespace {
struct Block : spares::Recycled<Block, 1> {
  char bytes[1500];
};
}  // namespace

TEST_CASE("freed blocks of a recycled class are reused, at most the bound", "[worker][spares]") {
  auto* first = new Block;
  auto* second = new Block;
  void* firstAddress = first;
  delete first;   // kept
  delete second;  // over the bound: freed
  auto* again = new Block;
#ifndef MOLT_SPARES_ASAN
  REQUIRE(static_cast<void*>(again) == firstAddress);
#else
  (void)firstAddress;
#endif
  delete again;
  releaseSpares();
}

TEST_CASE("a parser's head gives its buffers back when it goes", "[worker][spares]") {
  releaseSpares();
  const std::string request =
      "GET /a/rather/long/path/for/a/test HTTP/1.1\r\nHost: example.com\r\n"
      "User-Agent: test\r\nAccept: */*\r\nX-One: 1\r\nX-Two: 2\r\n\r\n";
  {
    molt::worker::HttpParser parser(molt::worker::HttpParser::Kind::Request);
    REQUIRE(parser.feed(request.data(), request.size()).status ==
            molt::worker::ParseStatus::HeadComplete);
  }
  std::string bytes;
  spares::Buffers<std::string, molt::worker::HttpHead>::take(bytes);
  REQUIRE(bytes.capacity() >= 100);
  std::vector<molt::worker::HttpField> fields;
  spares::Buffers<std::vector<molt::worker::HttpField>, molt::worker::HttpHead>::take(fields);
  REQUIRE(fields.capacity() >= 5);
  releaseSpares();
}
