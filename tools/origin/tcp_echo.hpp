// EchoConnection: one connection on a tcp-echo listener — every byte is sent back.
#pragma once

#include "tools/origin/connection.hpp"

namespace molt::origin {

// Echoes with backpressure: reading pauses while more than kWriteHighWater bytes wait to be
// written. On the client's EOF, the queued bytes are written, then our FIN, then the close.
class EchoConnection final : public Connection {
 public:
  explicit EchoConnection(ConnectionSet& set) : Connection(set) {}

 private:
  void onRead(Block* block, std::size_t length) override;
  void onEof() override;
  void onWritten() override;
  void onShutdown() override;

  bool peerEof_ = false;
};

}  // namespace molt::origin
