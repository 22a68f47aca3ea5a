#include "worker/http2/memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace molt::worker {

Http2Memory::Http2Memory()
    : mem_{this, &Http2Memory::allocate, &Http2Memory::deallocate, &Http2Memory::allocateZeroed,
           &Http2Memory::reallocate} {}

Http2Memory::~Http2Memory() {
  if (frameBuffer_) munmap(frameBuffer_, mapped_);
}

void Http2Memory::release() noexcept {
  if (!frameBuffer_ || released_) return;
  madvise(frameBuffer_, mapped_, MADV_DONTNEED);
  released_ = true;
}

void* Http2Memory::allocate(std::size_t size, void* self) {
  auto& memory = *static_cast<Http2Memory*>(self);
  if (size != kFrameBufferSize || memory.frameBuffer_) return std::malloc(size);
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::size_t length = (size + page - 1) / page * page;
  void* block = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED) return std::malloc(size);
  memory.frameBuffer_ = block;
  memory.mapped_ = length;
  // Touched from now on: the next release() gives the pages back.
  memory.released_ = false;
  return block;
}

void Http2Memory::deallocate(void* block, void* self) {
  auto& memory = *static_cast<Http2Memory*>(self);
  if (block && block == memory.frameBuffer_) {
    munmap(block, memory.mapped_);
    memory.frameBuffer_ = nullptr;
    return;
  }
  std::free(block);
}

void* Http2Memory::allocateZeroed(std::size_t count, std::size_t size, void*) {
  return std::calloc(count, size);
}

void* Http2Memory::reallocate(void* block, std::size_t size, void* self) {
  auto& memory = *static_cast<Http2Memory*>(self);
  if (!block) return allocate(size, self);  // how nghttp2 1.52 makes its frame buffer
  if (block != memory.frameBuffer_) return std::realloc(block, size);
  void* moved = std::malloc(size);  // not seen in nghttp2 1.52; kept correct all the same
  if (!moved) return nullptr;
  std::memcpy(moved, block, std::min(size, kFrameBufferSize));
  deallocate(block, self);
  return moved;
}

}  // namespace molt::worker
