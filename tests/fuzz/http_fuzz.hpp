// The HTTP fuzz targets' shared body: HttpParser over a byte stream, message after message as a
// keep-alive connection parses them, and the head rewriting that follows every accepted head.
// http_request_fuzz.cpp and http_response_fuzz.cpp pick the side.
//
// Beyond sanitizer reports, an accepted head that breaks checkHead's rules is a crash, and so is
// a stream that parses differently fed in the input's steps and fed whole.
//
// Input: byte 0 picks a HEAD request (bit 1: no body in the response) and whether the body is
// decoded through a sink (bit 2); byte 1 is the feeding step (1..256 bytes); the rest is the
// stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "worker/http/parser.hpp"
#include "worker/http/rewrite.hpp"
#include "worker/http/router.hpp"
#include "worker/net/buffer_pool.hpp"
#include "worker/net/output_chain.hpp"

namespace molt::worker::fuzz {

struct Sink final : BodySink {
  std::size_t bytes = 0;
  void onBodyData(const char*, std::size_t n) noexcept override { bytes += n; }
};

// What every accepted head must hold whatever the bytes were (HttpParser's validation): one way
// to frame the body, never both; a request has a target and at most one Host.
inline void checkHead(const HttpHead& head, bool response) {
  if (head.count(FieldKind::ContentLength) > 1) __builtin_trap();
  if (head.count(FieldKind::TransferEncoding) > 0 && head.count(FieldKind::ContentLength) > 0)
    __builtin_trap();
  if (head.chunked && head.hasLength) __builtin_trap();
  if (!response && (head.target().empty() || head.count(FieldKind::Host) > 1)) __builtin_trap();
}

inline void rewrite(const HttpParser& parser, bool response, BufferPool& pool) {
  OutputChain out(pool);
  const HttpHead& head = parser.head();
  checkHead(head, response);
  if (response) {
    writeResponseHead(head, ResponseFraming{head.chunked, !head.keepAlive, false}, out);
    return;
  }
  writeRequestHead(head, ForwardedInfo{"192.0.2.1", false, {}}, out);
  std::string scratch;
  std::string_view host = targetAuthority(head.target());
  if (const HttpField* f = head.find(FieldKind::Host); f && host.empty()) host = head.value(*f);
  Router::normalizeHost(host, scratch);
  (void)targetPath(head.target());
}

// What a caller sees of the head: the two parsing paths (whole heads, llhttp) must agree on it.
inline void describe(const HttpHead& h, std::string& out) {
  out.append(h.method()).append(" ").append(h.target()).append(" ");
  out.append(std::to_string(h.status())).append(" ").append(h.reason()).append(" 1.");
  out.append(std::to_string(h.versionMinor()));
  for (std::size_t i = 0; i < h.fieldCount(); ++i) {
    const HttpField& f = h.field(i);
    out.append("|").append(h.name(f)).append("=").append(h.value(f)).append("#");
    out.append(std::to_string(static_cast<int>(f.kind)));
  }
  out += h.chunked ? " chunked" : "";
  out += h.hasLength ? " length=" + std::to_string(h.length) : "";
  out += h.keepAlive ? " keep-alive" : "";
  out += h.upgrade ? " upgrade" : "";
  out += h.bodyUntilEof ? " until-eof" : "";
}

// Parses the stream message after message, fed `step` bytes at a time; returns what happened, in
// order, with offsets.
inline std::string parseStream(const std::uint8_t* data, std::size_t size, bool response,
                               std::size_t step, BufferPool& pool) {
  Sink sink;
  HttpParser parser(response ? HttpParser::Kind::Response : HttpParser::Kind::Request);
  parser.setNoBody(data[0] & 2);
  if (data[0] & 4) parser.setBodySink(&sink);
  const char* stream = reinterpret_cast<const char*>(data + 2);
  std::size_t length = size - 2, at = 0;
  std::string trace;
  while (at <= length) {
    std::size_t n = std::min(step, length - at);
    ParseResult r = parser.feed(stream + at, n);
    if (r.status == ParseStatus::Error) {
      trace += "error " + std::to_string(parser.error().status);
      break;
    }
    if (r.status == ParseStatus::NeedMore) {
      at += n;
      if (at == length) {
        if (parser.inBody() && parser.head().bodyUntilEof)
          trace += parser.finish().status == ParseStatus::Error ? "eof error" : "eof";
        break;
      }
      continue;
    }
    at += r.consumed;
    trace += "\n" + std::to_string(at) + ": ";
    if (r.status == ParseStatus::HeadComplete) {
      describe(parser.head(), trace);
      rewrite(parser, response, pool);
      if (parser.head().upgrade && !response) break;  // the rest is another protocol
    } else {
      trace += "complete, body " + std::to_string(sink.bytes);
      parser.reset();
      parser.setNoBody(data[0] & 2);
    }
    if (at == length && r.status == ParseStatus::MessageComplete) break;
  }
  return trace;
}

// The stream fed in the input's steps and fed whole must parse alike: a whole head takes
// HttpParser's own path (whole_head.cpp), a head in pieces llhttp's.
inline int fuzzHttp(const std::uint8_t* data, std::size_t size, bool response) {
  if (size < 2) return 0;
  static BufferPool pool;
  std::size_t step = static_cast<std::size_t>(data[1]) + 1;
  if (parseStream(data, size, response, step, pool) !=
      parseStream(data, size, response, SIZE_MAX, pool))
    __builtin_trap();
  return 0;
}

}  // namespace molt::worker::fuzz
