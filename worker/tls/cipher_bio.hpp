// Ciphertext of one TLS connection, kept in the worker's pooled buffers, and the BIO through which
// OpenSSL reads and writes it.
#pragma once

#include <openssl/bio.h>

#include <boost/container/small_vector.hpp>
#include <cstddef>
#include <span>

#include "worker/net/buffer_pool.hpp"
#include "worker/net/client_stream.hpp"

namespace molt::worker {

// A FIFO of bytes in pooled buffers. Holds buffers only while it holds bytes: an empty queue has
// given every buffer back. Single-threaded, like its pool; never throws except where it says.
class CipherQueue {
 public:
  explicit CipherQueue(BufferPool& pool) noexcept : pool_(&pool) {}
  ~CipherQueue() { clear(); }
  CipherQueue(const CipherQueue&) = delete;
  CipherQueue& operator=(const CipherQueue&) = delete;

  // Takes `buffer` (from the pool) holding `length` bytes. Bytes that fit behind the last buffer's
  // are copied there and `buffer` goes back at once, so a peer sending many small segments while
  // nothing consumes them costs their bytes, not a buffer each.
  void adopt(char* buffer, std::size_t length) noexcept;
  // Copies `bytes` in. Throws std::bad_alloc when a buffer cannot be made.
  void append(std::span<const char> bytes);
  // Copies out up to `out.size()` bytes from the front; returns how many.
  std::size_t read(std::span<char> out) noexcept;
  // Hands the front buffer over (the caller gives it back to the pool). False when empty.
  bool pop(BufferSlice& slice) noexcept;
  std::size_t size() const noexcept { return bytes_; }
  void clear() noexcept;
  BufferPool& pool() const noexcept { return *pool_; }

 private:
  BufferPool* pool_;
  boost::container::small_vector<BufferSlice, 2> slices_;
  std::size_t bytes_ = 0;
};

// The two directions of one connection's ciphertext: what the peer sent and OpenSSL has yet to
// read, and what OpenSSL wrote and the socket has yet to take.
struct CipherBuffers {
  explicit CipherBuffers(BufferPool& pool) noexcept : input(pool), output(pool) {}
  CipherQueue input;
  CipherQueue output;
};

// A BIO that reads `buffers.input` and appends to `buffers.output`; an empty input is "retry",
// never end of stream. The caller owns the returned reference (nullptr when out of memory) and
// calls detachCipherBio before `buffers` goes, as OpenSSL may hold the BIO longer.
BIO* newCipherBio(CipherBuffers& buffers) noexcept;
void detachCipherBio(BIO* bio) noexcept;

}  // namespace molt::worker
