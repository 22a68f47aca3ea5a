#include "worker/net/buffer_pool.hpp"

namespace molt::worker {

BufferPool::~BufferPool() {
  releaseFree();
}

char* BufferPool::take() {
  ++inUse_;
  if (free_.empty()) return new char[kBufferSize];
  char* buffer = free_.back();
  free_.pop_back();
  return buffer;
}

void BufferPool::give(char* buffer) noexcept {
  if (!buffer) return;
  --inUse_;
  if (free_.size() < keepFree_) {
    free_.push_back(buffer);
  } else {
    delete[] buffer;
  }
}

void BufferPool::releaseFree() noexcept {
  for (char* buffer : free_) delete[] buffer;
  free_.clear();
  free_.shrink_to_fit();
}

}  // namespace molt::worker
