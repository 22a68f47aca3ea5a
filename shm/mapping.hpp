// Mapping: sole owner of one mmap'd range.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

namespace molt::shm {

// How a process maps a zone: workers map the ticket keys read-only, everything else read-write.
enum class Access { ReadOnly, ReadWrite };

// Move-only owner of a MAP_SHARED mapping of a file; unmaps on destruction. The only place molt
// calls munmap(). Unmapping a zone view is how a draining worker gives shared pages back: shared
// pages are not freed by MADV_DONTNEED, only by the last unmap (or a hole punch).
class Mapping {
 public:
  Mapping() = default;
  // Maps `length` bytes of `fd` from offset 0. On failure returns an empty Mapping and sets
  // `error` to "mmap(WHAT, N bytes): reason". Pages are not touched (no MAP_POPULATE).
  static Mapping share(int fd, size_t length, Access access, const std::string& what,
                       std::string& error);

  Mapping(Mapping&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  char* data() const { return static_cast<char*>(data_); }
  size_t size() const { return size_; }
  explicit operator bool() const { return data_ != nullptr; }
  // Unmaps now (idempotent).
  void reset() noexcept;

 private:
  Mapping(void* data, size_t size) : data_(data), size_(size) {}
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace molt::shm
