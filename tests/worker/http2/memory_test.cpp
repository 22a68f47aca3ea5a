#include "worker/http2/memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

using molt::worker::Http2Memory;

namespace {

// Pages of [block, block + length) the kernel has in memory.
std::size_t residentPages(void* block, std::size_t length) {
  std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> pages((length + page - 1) / page);
  REQUIRE(mincore(block, length, pages.data()) == 0);
  std::size_t resident = 0;
  for (unsigned char p : pages) resident += p & 1;
  return resident;
}

}  // namespace

TEST_CASE("nghttp2's frame buffer gives its pages back when released", "[worker][http2]") {
  Http2Memory memory;
  nghttp2_mem* mem = memory.mem();
  // nghttp2 1.52 makes its frame buffer with realloc(NULL, ...).
  void* buffer = mem->realloc(nullptr, Http2Memory::kFrameBufferSize, mem->mem_user_data);
  REQUIRE(buffer != nullptr);
  REQUIRE(reinterpret_cast<std::uintptr_t>(buffer) % sysconf(_SC_PAGESIZE) == 0);  // a mapping
  std::memset(buffer, 'x', Http2Memory::kFrameBufferSize);
  REQUIRE(residentPages(buffer, Http2Memory::kFrameBufferSize) >= 4);
  REQUIRE(memory.releasable());
  memory.release();
  CHECK(residentPages(buffer, Http2Memory::kFrameBufferSize) == 0);
  CHECK_FALSE(memory.releasable());
  // Usable again: fresh zero pages.
  static_cast<char*>(buffer)[100] = 'y';
  memory.touched();
  CHECK(static_cast<char*>(buffer)[0] == 0);
  CHECK(memory.releasable());
  mem->free(buffer, mem->mem_user_data);
  CHECK_FALSE(memory.releasable());
}

TEST_CASE("other nghttp2 allocations are plain heap blocks", "[worker][http2]") {
  Http2Memory memory;
  nghttp2_mem* mem = memory.mem();
  void* small = mem->malloc(100, mem->mem_user_data);
  void* zeroed = mem->calloc(256, 16, mem->mem_user_data);
  REQUIRE(small != nullptr);
  REQUIRE(zeroed != nullptr);
  CHECK(static_cast<unsigned char*>(zeroed)[4095] == 0);
  small = mem->realloc(small, 5000, mem->mem_user_data);
  REQUIRE(small != nullptr);
  // A second buffer of the frame buffer's size while the first is held is a heap block too.
  void* first = mem->realloc(nullptr, Http2Memory::kFrameBufferSize, mem->mem_user_data);
  void* second = mem->malloc(Http2Memory::kFrameBufferSize, mem->mem_user_data);
  CHECK(first != second);
  mem->free(second, mem->mem_user_data);
  mem->free(first, mem->mem_user_data);
  mem->free(zeroed, mem->mem_user_data);
  mem->free(small, mem->mem_user_data);
  CHECK_FALSE(memory.releasable());
}
