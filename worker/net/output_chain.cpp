#include "worker/net/output_chain.hpp"

#include <charconv>
#include <cstring>

namespace molt::worker {

void OutputChain::appendSpill(std::string_view bytes) {
  while (!bytes.empty()) {
    if (count_ == 0 || slices_[count_ - 1].length == BufferPool::kBufferSize) {
      if (count_ == kMaxBuffers) {
        overflowed_ = true;
        return;
      }
      slices_[count_++] = BufferSlice{pool_.take(), 0, 0};
    }
    BufferSlice& last = slices_[count_ - 1];
    std::size_t n = std::min(bytes.size(), BufferPool::kBufferSize - last.length);
    std::memcpy(last.buffer + last.length, bytes.data(), n);
    last.length += static_cast<std::uint32_t>(n);
    bytes.remove_prefix(n);
  }
}

void OutputChain::appendNumber(std::uint64_t value) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  append(std::string_view(digits, static_cast<std::size_t>(end - digits)));
}

std::size_t OutputChain::size() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < count_; ++i) n += slices_[i].length;
  return n;
}

void OutputChain::clear() {
  for (std::size_t i = 0; i < count_; ++i) pool_.give(slices_[i].buffer);
  count_ = 0;
  overflowed_ = false;
}

std::string OutputChain::str() const {
  std::string out;
  for (std::size_t i = 0; i < count_; ++i) out.append(slices_[i].buffer, slices_[i].length);
  return out;
}

}  // namespace molt::worker
