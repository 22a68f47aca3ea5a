#include "worker/net/buffer_pool.hpp"

#include <catch2/catch.hpp>

using molt::worker::BufferPool;

TEST_CASE("buffers return to a bounded free list and can all be released", "[worker][buffers]") {
  BufferPool pool(2);
  char* a = pool.take();
  char* b = pool.take();
  char* c = pool.take();
  REQUIRE(pool.inUse() == 3);
  pool.give(a);
  pool.give(b);
  pool.give(c);  // over the bound: freed, not kept
  REQUIRE(pool.inUse() == 0);
  REQUIRE(pool.free() == 2);
  char* again = pool.take();
  REQUIRE((again == a || again == b));
  pool.give(again);
  pool.releaseFree();
  REQUIRE(pool.free() == 0);
}
