#include "worker/tls/cipher_bio.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace molt::worker {

void CipherQueue::adopt(char* buffer, std::size_t length) noexcept {
  if (length == 0) {
    pool_->give(buffer);
    return;
  }
  if (!slices_.empty()) {
    BufferSlice& tail = slices_.back();
    std::size_t end = tail.offset + tail.length;
    if (end + length <= BufferPool::kBufferSize) {
      std::memcpy(tail.buffer + end, buffer, length);
      tail.length += static_cast<std::uint32_t>(length);
      bytes_ += length;
      pool_->give(buffer);
      return;
    }
  }
  slices_.push_back({buffer, 0, static_cast<std::uint32_t>(length)});
  bytes_ += length;
}

void CipherQueue::append(std::span<const char> bytes) {
  while (!bytes.empty()) {
    if (slices_.empty() ||
        slices_.back().offset + slices_.back().length == BufferPool::kBufferSize) {
      char* buffer = pool_->take();
      try {
        slices_.push_back({buffer, 0, 0});
      } catch (...) {
        pool_->give(buffer);
        throw;
      }
    }
    BufferSlice& tail = slices_.back();
    std::size_t end = tail.offset + tail.length;
    std::size_t n = std::min(bytes.size(), BufferPool::kBufferSize - end);
    std::memcpy(tail.buffer + end, bytes.data(), n);
    tail.length += static_cast<std::uint32_t>(n);
    bytes_ += n;
    bytes = bytes.subspan(n);
  }
}

std::size_t CipherQueue::read(std::span<char> out) noexcept {
  std::size_t done = 0;
  while (done < out.size() && !slices_.empty()) {
    BufferSlice& front = slices_.front();
    std::size_t n = std::min<std::size_t>(out.size() - done, front.length);
    std::memcpy(out.data() + done, front.buffer + front.offset, n);
    front.offset += static_cast<std::uint32_t>(n);
    front.length -= static_cast<std::uint32_t>(n);
    done += n;
    if (front.length == 0) {
      pool_->give(front.buffer);
      slices_.erase(slices_.begin());
    }
  }
  bytes_ -= done;
  return done;
}

bool CipherQueue::pop(BufferSlice& slice) noexcept {
  if (slices_.empty()) return false;
  slice = slices_.front();
  slices_.erase(slices_.begin());
  bytes_ -= slice.length;
  return true;
}

void CipherQueue::clear() noexcept {
  for (const auto& s : slices_) pool_->give(s.buffer);
  slices_.clear();
  bytes_ = 0;
}

namespace {

CipherBuffers* buffersOf(BIO* bio) {
  return static_cast<CipherBuffers*>(BIO_get_data(bio));
}

int readCipher(BIO* bio, char* out, std::size_t length, std::size_t* done) {
  BIO_clear_retry_flags(bio);
  CipherBuffers* buffers = buffersOf(bio);
  if (buffers == nullptr) return 0;
  if (buffers->input.size() == 0) {
    BIO_set_retry_read(bio);  // the peer has not sent it yet
    return 0;
  }
  *done = buffers->input.read({out, length});
  return 1;
}

// OpenSSL writes whole records; the queue takes all of each, so a write never has to be retried.
int writeCipher(BIO* bio, const char* data, std::size_t length, std::size_t* done) {
  BIO_clear_retry_flags(bio);
  CipherBuffers* buffers = buffersOf(bio);
  if (buffers == nullptr) return 0;
  try {
    buffers->output.append({data, length});
  } catch (const std::bad_alloc&) {
    return 0;
  }
  *done = length;
  return 1;
}

long controlCipher(BIO* bio, int command, long, void*) {
  switch (command) {
    case BIO_CTRL_FLUSH:
      return 1;  // the output queue is what the socket takes next
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
      if (CipherBuffers* buffers = buffersOf(bio)) {
        return static_cast<long>(command == BIO_CTRL_PENDING ? buffers->input.size()
                                                             : buffers->output.size());
      }
      return 0;
    default:
      return 0;  // no kTLS, no end of file, no chaining
  }
}

// Made once per process and never freed: every connection's BIO points at it.
const BIO_METHOD* cipherMethod() {
  static BIO_METHOD* method = [] {
    int index = BIO_get_new_index();
    BIO_METHOD* m =
        index == -1 ? nullptr : BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "molt ciphertext");
    if (m != nullptr) {
      BIO_meth_set_read_ex(m, readCipher);
      BIO_meth_set_write_ex(m, writeCipher);
      BIO_meth_set_ctrl(m, controlCipher);
    }
    return m;
  }();
  return method;
}

}  // namespace

BIO* newCipherBio(CipherBuffers& buffers) noexcept {
  const BIO_METHOD* method = cipherMethod();
  if (method == nullptr) return nullptr;
  BIO* bio = BIO_new(method);
  if (bio == nullptr) return nullptr;
  BIO_set_data(bio, &buffers);
  BIO_set_init(bio, 1);
  return bio;
}

void detachCipherBio(BIO* bio) noexcept {
  if (bio != nullptr) BIO_set_data(bio, nullptr);
}

}  // namespace molt::worker
