// Output: gathering, coalescing and sending a connection's response bytes.
#include "tools/origin/output.hpp"

#include <algorithm>
#include <cstring>

namespace molt::origin {
namespace {

// A queued writev: keeps every piece's block alive until libuv is done with it.
struct WriteRequest {
  uv_write_t req;
  std::array<Block*, kMaxWritePieces> owners;
  std::size_t count;
};

}  // namespace

Output::~Output() {
  dropPieces();
  release(copyBlock_);
}

void Output::append(std::string_view bytes) {
  while (!bytes.empty()) {
    if (count_ == kMaxWritePieces) send(FlushMode::TryFirst);
    if (!copyBlock_ || copyUsed_ == kBlockSize) {
      release(copyBlock_);
      copyBlock_ = takeBlock();
      copyUsed_ = 0;
    }
    std::size_t n = std::min(bytes.size(), kBlockSize - copyUsed_);
    char* target = copyBlock_->data + copyUsed_;
    std::memcpy(target, bytes.data(), n);
    Piece* last = count_ ? &pieces_[count_ - 1] : nullptr;
    if (last && last->owner == copyBlock_ && last->data + last->length == target) {
      last->length += n;
    } else {
      addPiece(copyBlock_, target, n);
    }
    copyUsed_ += n;
    bytes.remove_prefix(n);
  }
}

void Output::appendRef(Block* owner, const char* data, std::size_t length) {
  if (length == 0) return;
  if (count_ == kMaxWritePieces) send(FlushMode::TryFirst);
  addPiece(owner, data, length);
}

void Output::addPiece(Block* owner, const char* data, std::size_t length) {
  retain(owner);
  pieces_[count_++] = Piece{data, length, owner};
}

int Output::flush(FlushMode mode) {
  int rc = send(mode);
  release(copyBlock_);
  copyBlock_ = nullptr;
  copyUsed_ = 0;
  return rc;
}

int Output::send(FlushMode mode) {
  if (error_ != 0) dropPieces();
  if (count_ == 0) return error_;
  std::array<uv_buf_t, kMaxWritePieces> bufs;
  for (std::size_t i = 0; i < count_; ++i) {
    bufs[i] = uv_buf_init(const_cast<char*>(pieces_[i].data), pieces_[i].length);
  }
  std::size_t first = 0;
  if (mode == FlushMode::TryFirst && stream_->write_queue_size == 0) {
    int written = uv_try_write(stream_, bufs.data(), count_);
    if (written < 0 && written != UV_EAGAIN) {
      error_ = written;
      dropPieces();
      return error_;
    }
    auto left = static_cast<std::size_t>(std::max(written, 0));
    while (first < count_ && left >= bufs[first].len) left -= bufs[first++].len;
    if (first < count_) {
      bufs[first].base += left;
      bufs[first].len -= left;
    }
  }
  if (first == count_) {
    dropPieces();
    return 0;
  }
  auto* request = new WriteRequest;
  request->count = 0;
  for (std::size_t i = 0; i < first; ++i) release(pieces_[i].owner);
  for (std::size_t i = first; i < count_; ++i) request->owners[request->count++] = pieces_[i].owner;
  count_ = 0;
  int rc = uv_write(&request->req, stream_, bufs.data() + first, request->count, done_);
  if (rc < 0) {
    error_ = rc;
    complete(&request->req);
  }
  return error_;
}

void Output::dropPieces() {
  for (std::size_t i = 0; i < count_; ++i) release(pieces_[i].owner);
  count_ = 0;
}

void Output::complete(uv_write_t* req) {
  auto* request = reinterpret_cast<WriteRequest*>(req);
  for (std::size_t i = 0; i < request->count; ++i) release(request->owners[i]);
  delete request;
}

}  // namespace molt::origin
