// WebSocket (RFC 6455) for molt-origin: the handshake's accept key and a streaming frame echo.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tools/origin/buffer_pool.hpp"
#include "tools/origin/output.hpp"

namespace molt::origin {

// base64(SHA-1(key + the RFC 6455 GUID)), the Sec-WebSocket-Accept value for `key`.
std::string websocketAccept(std::string_view key);

// Echoes client frames back one by one, unmasked, as their bytes arrive: data frames with their
// own opcode and FIN bit, pings as pongs, a close frame as a close frame. Pongs are dropped.
// Payloads are never buffered, so any frame size works in constant memory.
class WebSocketEcho {
 public:
  enum class Result {
    Continue,       // wants more bytes
    Closed,         // the client's close frame was answered; close the connection after it
    ProtocolError,  // a close frame with status 1002 was queued; close the connection after it
  };

  // Consumes all `length` bytes at `data` (inside `block`, which it unmasks in place and
  // references from `out`). Bytes after a close frame are ignored.
  Result feed(Output& out, Block* block, char* data, std::size_t length);

 private:
  enum class State { Header, Payload, Done };

  // Needs more header bytes: 0 once the header in header_ is complete.
  std::size_t headerBytesMissing() const;
  Result startFrame(Output& out);
  void unmask(char* data, std::size_t length);

  State state_ = State::Header;
  unsigned char header_[14] = {};
  std::size_t headerLength_ = 0;
  std::uint64_t payloadLeft_ = 0;
  unsigned char mask_[4] = {};
  std::size_t maskOffset_ = 0;
  bool echoPayload_ = false;
  bool closeAfterFrame_ = false;
};

}  // namespace molt::origin
