#include "worker/tls/cipher_bio.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

using molt::worker::BufferPool;
using molt::worker::BufferSlice;
using molt::worker::CipherBuffers;
using molt::worker::CipherQueue;

namespace {

char* pooled(BufferPool& pool, const std::string& bytes) {
  char* buffer = pool.take();
  std::memcpy(buffer, bytes.data(), bytes.size());
  return buffer;
}

std::string drain(CipherQueue& queue, std::size_t chunk) {
  std::string out;
  std::string piece(chunk, '\0');
  while (std::size_t n = queue.read({piece.data(), piece.size()})) out.append(piece.data(), n);
  return out;
}

}  // namespace

TEST_CASE("small reads waiting in a cipher queue share one buffer", "[tls][cipher]") {
  BufferPool pool;
  std::string expected;
  {
    CipherQueue queue(pool);
    for (int i = 0; i < 500; ++i) {
      std::string segment = std::to_string(i) + ",";
      expected += segment;
      queue.adopt(pooled(pool, segment), segment.size());
    }
    CHECK(queue.size() == expected.size());
    CHECK(pool.inUse() == 1);  // the bytes of 500 segments, not 500 buffers
    CHECK(drain(queue, 7) == expected);
    CHECK(queue.size() == 0);
    CHECK(pool.inUse() == 0);
  }
  CHECK(pool.inUse() == 0);
}

TEST_CASE("a cipher queue reads across buffers in order and gives each back once read",
          "[tls][cipher]") {
  BufferPool pool;
  CipherQueue queue(pool);
  std::string big(BufferPool::kBufferSize - 10, 'a');
  queue.adopt(pooled(pool, big), big.size());
  queue.adopt(pooled(pool, std::string(100, 'b')), 100);  // does not fit behind: its own buffer
  CHECK(pool.inUse() == 2);
  std::string bytes(3 * BufferPool::kBufferSize + 5, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  queue.append(bytes);  // fills the second buffer first, then three more
  CHECK(queue.size() == big.size() + 100 + bytes.size());
  CHECK(pool.inUse() == 5);
  std::string head(big.size() + 50, '\0');
  CHECK(queue.read({head.data(), head.size()}) == head.size());
  CHECK(head == big + std::string(50, 'b'));
  CHECK(pool.inUse() == 4);  // the first buffer went back as soon as it was read
  CHECK(drain(queue, 1000) == std::string(50, 'b') + bytes);
  CHECK(pool.inUse() == 0);
}

TEST_CASE("a cipher queue hands its buffers over whole and gives back what it still holds",
          "[tls][cipher]") {
  BufferPool pool;
  {
    CipherQueue queue(pool);
    std::string bytes(BufferPool::kBufferSize + 300, 'x');
    queue.append(bytes);
    BufferSlice slice;
    REQUIRE(queue.pop(slice));
    CHECK(slice.offset == 0);
    CHECK(slice.length == BufferPool::kBufferSize);
    CHECK(queue.size() == 300);
    pool.give(slice.buffer);
    CHECK(pool.inUse() == 1);
  }
  CHECK(pool.inUse() == 0);  // the queue's last buffer went back with it
}

TEST_CASE("the cipher BIO reads what waits, asks to retry when nothing does, and takes all writes",
          "[tls][cipher]") {
  BufferPool pool;
  CipherBuffers buffers(pool);
  BIO* bio = molt::worker::newCipherBio(buffers);
  REQUIRE(bio != nullptr);
  char out[16];
  CHECK(BIO_read(bio, out, sizeof out) <= 0);
  CHECK(BIO_should_retry(bio));
  CHECK(BIO_should_read(bio));
  buffers.input.append(std::string("hello"));
  CHECK(BIO_ctrl_pending(bio) == 5);
  CHECK(BIO_read(bio, out, 3) == 3);
  CHECK(std::string(out, 3) == "hel");
  CHECK(BIO_read(bio, out, sizeof out) == 2);
  std::string record(20000, 'r');
  CHECK(BIO_write(bio, record.data(), static_cast<int>(record.size())) == 20000);
  CHECK(BIO_ctrl_wpending(bio) == 20000);
  CHECK(BIO_flush(bio) == 1);
  CHECK(buffers.output.size() == 20000);
  // Detached (its buffers gone): reads and writes fail instead of touching them.
  molt::worker::detachCipherBio(bio);
  CHECK(BIO_read(bio, out, sizeof out) <= 0);
  CHECK_FALSE(BIO_should_retry(bio));
  CHECK(BIO_write(bio, "x", 1) <= 0);
  BIO_free(bio);
}
