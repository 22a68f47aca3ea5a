// WebSocket handshake key and frame echo.
#include "tools/origin/websocket.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

namespace molt::origin {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

enum Opcode : unsigned char {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Server frames are never masked, so the header is 2, 4 or 10 bytes.
void appendFrameHeader(Output& out, unsigned char first, std::uint64_t length) {
  unsigned char header[10];
  std::size_t size = 2;
  header[0] = first;
  if (length < 126) {
    header[1] = static_cast<unsigned char>(length);
  } else if (length <= 0xFFFF) {
    header[1] = 126;
    header[2] = static_cast<unsigned char>(length >> 8);
    header[3] = static_cast<unsigned char>(length);
    size = 4;
  } else {
    header[1] = 127;
    for (int i = 0; i < 8; ++i) header[2 + i] = static_cast<unsigned char>(length >> (56 - 8 * i));
    size = 10;
  }
  out.append(std::string_view(reinterpret_cast<const char*>(header), size));
}

}  // namespace

std::string websocketAccept(std::string_view key) {
  std::string input(key);
  input += kGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLength = 0;
  EVP_Digest(input.data(), input.size(), digest, &digestLength, EVP_sha1(), nullptr);
  unsigned char encoded[64];
  int encodedLength = EVP_EncodeBlock(encoded, digest, static_cast<int>(digestLength));
  return std::string(reinterpret_cast<const char*>(encoded),
                     static_cast<std::size_t>(encodedLength));
}

WebSocketEcho::Result WebSocketEcho::feed(Output& out, Block* block, char* data,
                                          std::size_t length) {
  while (length > 0 && state_ != State::Done) {
    if (state_ == State::Header) {
      std::size_t n = std::min(headerBytesMissing(), length);
      std::memcpy(header_ + headerLength_, data, n);
      headerLength_ += n;
      data += n;
      length -= n;
      if (headerBytesMissing() > 0) continue;
      if (Result r = startFrame(out); r != Result::Continue) return r;
    }
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(payloadLeft_, length));
    if (state_ == State::Payload && n > 0) {
      unmask(data, n);
      if (echoPayload_) out.appendRef(block, data, n);
      payloadLeft_ -= n;
      data += n;
      length -= n;
    }
    if (state_ == State::Payload && payloadLeft_ == 0) {
      state_ = closeAfterFrame_ ? State::Done : State::Header;
      headerLength_ = 0;
    }
  }
  return state_ == State::Done ? Result::Closed : Result::Continue;
}

std::size_t WebSocketEcho::headerBytesMissing() const {
  if (headerLength_ < 2) return 2 - headerLength_;
  unsigned char lengthCode = header_[1] & 0x7F;
  std::size_t extended = lengthCode == 126 ? 2 : lengthCode == 127 ? 8 : 0;
  std::size_t masked = (header_[1] & 0x80) ? 4 : 0;
  return 2 + extended + masked - headerLength_;
}

WebSocketEcho::Result WebSocketEcho::startFrame(Output& out) {
  unsigned char opcode = header_[0] & 0x0F;
  bool fin = header_[0] & 0x80;
  bool control = opcode & 0x08;
  unsigned char lengthCode = header_[1] & 0x7F;
  std::uint64_t length = lengthCode;
  std::size_t at = 2;
  if (lengthCode >= 126) {
    std::size_t bytes = lengthCode == 126 ? 2 : 8;
    length = 0;
    for (std::size_t i = 0; i < bytes; ++i) length = (length << 8) | header_[at++];
  }
  bool known = opcode <= kBinary || opcode == kClose || opcode == kPing || opcode == kPong;
  bool valid = known && (header_[0] & 0x70) == 0 && (header_[1] & 0x80) && (length >> 63) == 0 &&
               (!control || (fin && length <= 125));
  if (!valid) {
    static constexpr char kProtocolErrorClose[] = {'\x88', '\x02', '\x03', '\xEA'};
    out.append(std::string_view(kProtocolErrorClose, sizeof kProtocolErrorClose));
    state_ = State::Done;
    return Result::ProtocolError;
  }
  std::memcpy(mask_, header_ + at, 4);
  maskOffset_ = 0;
  payloadLeft_ = length;
  echoPayload_ = opcode != kPong;
  closeAfterFrame_ = opcode == kClose;
  unsigned char replyOpcode = opcode == kPing ? static_cast<unsigned char>(kPong) : opcode;
  if (echoPayload_)
    appendFrameHeader(out, static_cast<unsigned char>((fin ? 0x80 : 0) | replyOpcode), length);
  state_ = State::Payload;
  return Result::Continue;
}

void WebSocketEcho::unmask(char* data, std::size_t length) {
  std::size_t i = 0;
  if (length >= 16) {
    unsigned char rotated[8];
    for (std::size_t k = 0; k < 8; ++k) rotated[k] = mask_[(maskOffset_ + k) & 3];
    std::uint64_t wide;
    std::memcpy(&wide, rotated, 8);
    for (; i + 8 <= length; i += 8) {
      std::uint64_t word;
      std::memcpy(&word, data + i, 8);
      word ^= wide;
      std::memcpy(data + i, &word, 8);
    }
  }
  for (; i < length; ++i) data[i] = static_cast<char>(data[i] ^ mask_[(maskOffset_ + i) & 3]);
  maskOffset_ = (maskOffset_ + length) & 3;
}

}  // namespace molt::origin
