// OutputChain: bytes the proxy composes (rewritten heads, its own responses), built directly in
// pooled buffers so they can be written without another copy.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "worker/net/buffer_pool.hpp"
#include "worker/net/client_stream.hpp"

namespace molt::worker {

// Appends into BufferPool buffers, taking a new one when the last is full, up to kMaxBuffers
// (enough for any head the parser accepts plus what the proxy adds). Buffers not handed out
// with release() go back to the pool on destruction or clear().
class OutputChain {
 public:
  static constexpr std::size_t kMaxBuffers = ClientStream::kMaxSlices - 1;

  explicit OutputChain(BufferPool& pool) : pool_(pool) {}
  ~OutputChain() { clear(); }
  OutputChain(const OutputChain&) = delete;
  OutputChain& operator=(const OutputChain&) = delete;

  // A head is built from a few dozen short pieces: the common case, a piece that fits in the last
  // buffer, is a bounds check and a copy, inlined.
  void append(std::string_view bytes) {
    if (bytes.empty()) return;  // its data() may be null, which memcpy must not get
    if (count_ != 0) {
      BufferSlice& last = slices_[count_ - 1];
      if (bytes.size() <= BufferPool::kBufferSize - last.length) {
        std::memcpy(last.buffer + last.length, bytes.data(), bytes.size());
        last.length += static_cast<std::uint32_t>(bytes.size());
        return;
      }
    }
    appendSpill(bytes);
  }
  void appendNumber(std::uint64_t value);
  // True when an append did not fit in kMaxBuffers (the bytes were dropped).
  bool overflowed() const { return overflowed_; }
  bool empty() const { return count_ == 0; }
  std::size_t size() const;
  // The slices built so far; ownership stays here until release().
  std::span<const BufferSlice> slices() const { return {slices_.data(), count_}; }
  // Forgets the slices without giving their buffers back (a write now owns them).
  void release() {
    count_ = 0;
    overflowed_ = false;
  }
  // Gives every buffer back and starts empty.
  void clear();
  // A copy of the bytes (tests, logs).
  std::string str() const;

 private:
  // Takes new buffers as the last one fills.
  void appendSpill(std::string_view bytes);

  BufferPool& pool_;
  std::array<BufferSlice, kMaxBuffers> slices_{};
  std::size_t count_ = 0;
  bool overflowed_ = false;
};

}  // namespace molt::worker
