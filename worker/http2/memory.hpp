// Http2Memory: nghttp2's allocator for one connection (nghttp2_mem). Everything goes to malloc
// but nghttp2's outbound frame buffer: one block of kFrameBufferSize the session keeps for its
// life and uses only while it writes a frame. That block is a mapping of its own, so an idle
// connection gives its pages back (release()) and its next frame faults in fresh ones: an idle
// connection then holds no frame buffer, however large the frames it sent before.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>

namespace molt::worker {

class Http2Memory {
 public:
  // nghttp2's NGHTTP2_FRAMEBUF_CHUNKLEN (lib/nghttp2_session.h: frame header, padding length
  // byte, 16 KiB payload). No other allocation of nghttp2 1.52 has this size; another version
  // whose buffer differs simply gets malloc for it.
  static constexpr std::size_t kFrameBufferSize = 9 + 1 + 16384;

  Http2Memory();
  ~Http2Memory();
  Http2Memory(const Http2Memory&) = delete;
  Http2Memory& operator=(const Http2Memory&) = delete;

  // For nghttp2_session_server_new3; valid while this object lives (it must outlive the session).
  nghttp2_mem* mem() { return &mem_; }
  // Gives the frame buffer's pages back. Only while the session has nothing to write: the buffer
  // then holds no byte nghttp2 still needs.
  void release() noexcept;
  // nghttp2 wrote a frame: the buffer's pages are in use again.
  void touched() noexcept { released_ = false; }
  // There are pages to give back.
  bool releasable() const noexcept { return frameBuffer_ && !released_; }

 private:
  static void* allocate(std::size_t size, void* self);
  static void deallocate(void* block, void* self);
  static void* allocateZeroed(std::size_t count, std::size_t size, void* self);
  static void* reallocate(void* block, std::size_t size, void* self);

  nghttp2_mem mem_;
  void* frameBuffer_ = nullptr;  // the mapping, while nghttp2 holds it
  std::size_t mapped_ = 0;
  bool released_ = true;  // no page of it touched since the last release
};

}  // namespace molt::worker
