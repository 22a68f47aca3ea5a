// UvHandle<T>: RAII over a libuv handle whose memory is freed only in its close callback.
#pragma once

#include <uv.h>

#include <type_traits>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define MOLT_UV_HANDLE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOLT_UV_HANDLE_ASAN 1
#endif
#endif

namespace molt::common {

// Owns a heap-allocated libuv handle. Destruction (or close()) calls uv_close and the memory is
// released in the close callback, as libuv requires. The handle's `data` is cleared first, so
// callbacks still pending on it (cancelled writes, connects) must treat a null `data` as
// "owner gone". Not copyable, movable.
template <class T>
class UvHandle {
 public:
  UvHandle() : handle_(allocate()) {}
  UvHandle(UvHandle&& other) noexcept : handle_(other.handle_) { other.handle_ = nullptr; }
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      close();
      handle_ = other.handle_;
      other.handle_ = nullptr;
    }
    return *this;
  }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() { close(); }

  T* get() const { return handle_; }
  T* operator->() const { return handle_; }
  uv_handle_t* base() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(handle_); }
  // True once a uv_*_init succeeded on it.
  bool initialized() const {
    return handle_ && reinterpret_cast<uv_handle_t*>(handle_)->type != UV_UNKNOWN_HANDLE;
  }

  // Starts closing; safe to call repeatedly. After it, get() is null.
  void close() noexcept {
    if (!handle_) return;
    auto* h = reinterpret_cast<uv_handle_t*>(handle_);
    if (initialized()) {
      h->data = nullptr;
      if (!uv_is_closing(h))
        uv_close(h, [](uv_handle_t* closed) { release(reinterpret_cast<T*>(closed)); });
    } else {
      release(handle_);
    }
    handle_ = nullptr;
  }

 private:
  // Closed handles' memory is kept for the next handle of the type (a worker serving HTTP/2 makes
  // a timer per stream), at most kKeep blocks; not under AddressSanitizer, which must see every
  // free.
  static constexpr std::size_t kKeep = 64;
  static std::vector<T*>& kept() noexcept {
    static auto& blocks = *new std::vector<T*>();
    return blocks;
  }
  static T* allocate() {
#ifndef MOLT_UV_HANDLE_ASAN
    if (!kept().empty()) {
      T* block = kept().back();
      kept().pop_back();
      *block = T{};
      return block;
    }
#endif
    return new T{};
  }
  static void release(T* block) noexcept {
#ifndef MOLT_UV_HANDLE_ASAN
    if (kept().size() < kKeep) {
      kept().push_back(block);
      return;
    }
#endif
    delete block;
  }

  T* handle_;
};

}  // namespace molt::common
