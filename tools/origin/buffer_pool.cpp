// The free list behind takeBlock()/release(): a handful of blocks kept for reuse, the rest freed.
#include "tools/origin/buffer_pool.hpp"

#include <cstddef>
#include <vector>

namespace molt::origin {
namespace {

// Enough for a burst of reads on a few busy connections; beyond that, idle memory goes back.
constexpr std::size_t kMaxFreeBlocks = 32;

// Frees its blocks at exit so that leak checkers see only real leaks.
struct FreeList {
  std::vector<Block*> blocks;
  ~FreeList() {
    for (Block* block : blocks) delete block;
  }
};

std::vector<Block*>& freeList() {
  static FreeList list;
  return list.blocks;
}

}  // namespace

Block* Block::fromData(char* data) {
  return reinterpret_cast<Block*>(data - offsetof(Block, data));
}

Block* takeBlock() {
  auto& blocks = freeList();
  Block* block;
  if (blocks.empty()) {
    block = new Block;
  } else {
    block = blocks.back();
    blocks.pop_back();
  }
  block->refs = 1;
  return block;
}

void retain(Block* block) {
  if (block) ++block->refs;
}

void release(Block* block) {
  if (!block || --block->refs > 0) return;
  auto& blocks = freeList();
  if (blocks.size() < kMaxFreeBlocks) {
    blocks.push_back(block);
  } else {
    delete block;
  }
}

}  // namespace molt::origin
