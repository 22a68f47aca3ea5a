// Output: the write side of one connection. Small pieces are copied into a pooled block, large
// ones are referenced in place, and each flush hands everything to the kernel in one writev.
#pragma once

#include <uv.h>

#include <array>
#include <cstddef>
#include <string_view>

#include "tools/origin/buffer_pool.hpp"

namespace molt::origin {

// Pieces gathered into one writev at most; appending more sends the first ones.
inline constexpr std::size_t kMaxWritePieces = 16;

enum class FlushMode {
  TryFirst,  // uv_try_write first; a write callback follows only if something had to be queued
  Async,     // always through uv_write, so that a write callback follows
};

// Belongs to one connection and its stream; not copyable. Pieces stay valid until written
// because each holds a reference to its block (null block = static data).
class Output {
 public:
  // `done` is the uv_write callback; it must call Output::complete(req) first.
  Output(uv_stream_t* stream, uv_write_cb done) : stream_(stream), done_(done) {}
  ~Output();
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  // Copies `bytes` (coalesced with the previous copy when contiguous).
  void append(std::string_view bytes);
  // Queues `length` bytes at `data` without copying; takes its own reference on `owner`.
  void appendRef(Block* owner, const char* data, std::size_t length);
  // Sends every appended piece and lets go of the copy block. Returns 0 or a libuv error, after
  // which nothing more will be written.
  int flush(FlushMode mode = FlushMode::TryFirst);
  // Bytes handed to uv_write and not yet written to the kernel.
  std::size_t queued() const { return stream_->write_queue_size; }

  // For the write callback: drops the request's references and frees it.
  static void complete(uv_write_t* req);

 private:
  struct Piece {
    const char* data;
    std::size_t length;
    Block* owner;
  };

  void addPiece(Block* owner, const char* data, std::size_t length);
  int send(FlushMode mode);
  void dropPieces();

  uv_stream_t* stream_;
  uv_write_cb done_;
  std::array<Piece, kMaxWritePieces> pieces_{};
  std::size_t count_ = 0;
  Block* copyBlock_ = nullptr;  // where append() copies to; one reference held
  std::size_t copyUsed_ = 0;
  int error_ = 0;
};

}  // namespace molt::origin
