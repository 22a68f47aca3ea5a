// Block: the reference-counted 64 KiB buffer every read and coalesced write of molt-origin uses.
#pragma once

#include <cstddef>
#include <cstdint>

namespace molt::origin {

inline constexpr std::size_t kBlockSize = 64 * 1024;

// A pooled buffer shared by a read and the writes that echo parts of it. Single-threaded.
struct Block {
  std::uint32_t refs;
  alignas(16) char data[kBlockSize];

  // The block whose `data` starts at `data` (as handed to libuv's alloc callback).
  static Block* fromData(char* data);
};

// A block with one reference, from the free list when it has one.
Block* takeBlock();
// Adds a reference; null is ignored.
void retain(Block* block);
// Drops a reference; the last one returns the block to the free list (or frees it). Null ignored.
void release(Block* block);

}  // namespace molt::origin
