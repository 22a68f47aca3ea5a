// Spares: memory a worker keeps between short-lived objects of the same kind. An HTTP/2 stream
// makes an Http2Stream, an HttpSession and three parsed heads and frees them at its end; taking
// their blocks and buffers warm from here instead of malloc spares the allocator's slow paths
// (blocks over 1 KiB are not in glibc's per-thread cache, and each such allocation consolidates
// its fast bins). Every list is bounded and small, so what a worker keeps does not grow with its
// connections; a draining worker drops all of it (releaseSpares). Single-threaded, like a worker.
#pragma once

#include <cstddef>
#include <new>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define MOLT_SPARES_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOLT_SPARES_ASAN 1
#endif
#endif

namespace molt::worker {

// Frees every kept block and buffer (a draining worker gives its memory back).
void releaseSpares() noexcept;

namespace spares {

// Registers a list's release function with releaseSpares (once per list).
void addRelease(void (*release)() noexcept) noexcept;

// Kept heap buffers of strings or vectors of one type, for one purpose (`Tag`: buffers of like
// sizes together). At most kBudget bytes are kept, each buffer at most kMaxBytes.
template <class Buffer, class Tag = void, std::size_t kBudget = 256 * 1024,
          std::size_t kMaxBytes = 4 * 1024>
class Buffers {
 public:
  // Gives `buffer`, empty and without a heap buffer of its own, a kept one (if any).
  static void take(Buffer& buffer) noexcept {
    Kept& kept = list();
    if (kept.buffers.empty() || buffer.capacity() > Buffer().capacity()) return;
    buffer = std::move(kept.buffers.back());
    kept.buffers.pop_back();
    kept.bytes -= bytesOf(buffer);
  }
  // Keeps `buffer`'s heap buffer for a later take() if it is not too large and the budget has
  // room; `buffer` is left empty.
  static void give(Buffer& buffer) noexcept {
    Kept& kept = list();
    std::size_t bytes = bytesOf(buffer);
    if (buffer.capacity() > Buffer().capacity() && bytes <= kMaxBytes &&
        kept.bytes + bytes <= kBudget) {
      buffer.clear();
      kept.buffers.push_back(std::move(buffer));
      kept.bytes += bytes;
    }
    buffer = Buffer();
  }

 private:
  struct Kept {
    std::vector<Buffer> buffers;
    std::size_t bytes = 0;
  };
  static std::size_t bytesOf(const Buffer& buffer) noexcept {
    return buffer.capacity() * sizeof(typename Buffer::value_type) + sizeof(Buffer);
  }
  static Kept& list() noexcept {
    static Kept& kept = *[] {
      auto* made = new Kept();
      addRelease([]() noexcept { list() = Kept(); });
      return made;
    }();
    return kept;
  }
};

// A base giving class T operator new/delete from a bounded list of freed T blocks. Off under
// AddressSanitizer, which must see every free to find a use after it.
template <class T, std::size_t kKeep = 128>
class Recycled {
 public:
  static void* operator new(std::size_t size) {
#ifndef MOLT_SPARES_ASAN
    auto& kept = blocks();
    if (size == sizeof(T) && !kept.empty()) {
      void* block = kept.back();
      kept.pop_back();
      return block;
    }
#endif
    return ::operator new(size);
  }
  static void operator delete(void* block, std::size_t size) noexcept {
#ifndef MOLT_SPARES_ASAN
    auto& kept = blocks();
    if (size == sizeof(T) && kept.size() < kKeep) {
      kept.push_back(block);
      return;
    }
#endif
    ::operator delete(block);
  }

 private:
  static std::vector<void*>& blocks() noexcept {
    static std::vector<void*>& kept = *[] {
      auto* made = new std::vector<void*>();
      made->reserve(kKeep);
      addRelease([]() noexcept {
        for (void* block : blocks()) ::operator delete(block);
        std::vector<void*>().swap(blocks());
      });
      return made;
    }();
    return kept;
  }
};

}  // namespace spares
}  // namespace molt::worker
