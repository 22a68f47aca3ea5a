// EchoConnection: the TCP echo.
#include "tools/origin/tcp_echo.hpp"

namespace molt::origin {

void EchoConnection::onRead(Block* block, std::size_t length) {
  out_.appendRef(block, block->data, length);
  if (out_.flush() != 0) {
    close();
    return;
  }
  setReading(out_.queued() < kWriteHighWater);
}

void EchoConnection::onEof() {
  peerEof_ = true;
  setReading(false);
  shutdownWrite();  // libuv sends the FIN only after every queued write
}

void EchoConnection::onWritten() {
  if (!peerEof_) setReading(out_.queued() < kWriteHighWater);
}

void EchoConnection::onShutdown() {
  close();
}

}  // namespace molt::origin
