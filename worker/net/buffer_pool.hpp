// Read buffers for proxied streams, handed out only while data is in flight.
#pragma once

#include <cstddef>
#include <vector>

namespace molt::worker {

// Fixed-size buffers with a bounded free list. A connection takes one in libuv's alloc callback
// and gives it back once the bytes were written to the other side, so an idle connection holds
// no buffer. Single-threaded (one per worker loop).
class BufferPool {
 public:
  static constexpr size_t kBufferSize = 16 * 1024;

  explicit BufferPool(size_t keepFree = 64) : keepFree_(keepFree) {}
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  char* take();
  void give(char* buffer) noexcept;
  // Frees every idle buffer (a draining worker gives its memory back).
  void releaseFree() noexcept;
  size_t inUse() const { return inUse_; }
  size_t free() const { return free_.size(); }

 private:
  std::vector<char*> free_;
  size_t keepFree_;
  size_t inUse_ = 0;
};

}  // namespace molt::worker
