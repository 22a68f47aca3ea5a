// Http2Stream: one HTTP/2 stream seen as the byte stream of an HTTP/1.1 client, so that the
// HttpSession that serves HTTP/1.1 connections serves the stream too: routing, rewriting,
// balancing, retries, timeouts, pooled server connections and the access log are one code path
// for both protocols. The request's HEADERS and DATA become HTTP/1.1 bytes the session reads;
// the HTTP/1.1 response the session writes is parsed back into HEADERS, DATA and trailers.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "worker/http/parser.hpp"
#include "worker/net/client_stream.hpp"
#include "worker/net/spares.hpp"

namespace molt::worker {

class Http2Session;

class Http2Stream final : public ClientStream,
                          public spares::Recycled<Http2Stream>,
                          private BodySink {
 public:
  Http2Stream(Http2Session& connection, std::int32_t id, bool secure,
              const common::SocketAddress& peer, std::uint32_t maxHeaderList);
  ~Http2Stream() override;
  Http2Stream(const Http2Stream&) = delete;
  Http2Stream& operator=(const Http2Stream&) = delete;

  std::int32_t id() const { return id_; }

  // ---- from the connection (nghttp2's callbacks; none calls the handler) ----
  // One request header field (pseudo-header fields included), or a trailer field after the
  // body. False once the list passed max_header_list_size: the stream then answers 431.
  bool onField(std::string_view name, std::string_view value);
  // The request's header block ended (`endStream`: it has no body).
  void onHeadersEnd(bool endStream);
  bool headerListTooLarge() const { return tooLarge_; }
  // Request body bytes (DATA payload).
  void onBody(const std::uint8_t* data, std::size_t length);
  // The client's side of the stream ended (END_STREAM, after trailers if any).
  void onRequestEnd();
  // nghttp2 closed the stream (`error`: its code; NO_ERROR after a complete exchange).
  void onClosed(std::uint32_t error);
  // nghttp2 wants DATA for the response: fills `buffer`, or defers (NGHTTP2_ERR_DEFERRED).
  ssize_t readResponse(std::uint8_t* buffer, std::size_t length, std::uint32_t* flags);

  // ---- from the connection, outside nghttp2's calls: events for the handler ----
  // Delivers what is due (input, its end, written and shutdown reports). The handler may do
  // anything from inside but destroy this stream.
  void deliver();
  // Request body bytes passed to the handler since the last call: their flow-control credit.
  std::size_t takeConsumed();
  bool closed() const { return closed_; }
  // The response went out whole (END_STREAM or trailers); the request arrived whole.
  bool responseDone() const { return outDone_ && !failed_; }
  bool requestDone() const { return inEnded_; }
  // The session read the whole request, answered it and waits for another (idle()).
  bool exchangeDone() const { return exchangeDone_; }

  // ---- ClientStream, for the HttpSession ----
  void setHandler(StreamHandler* handler) noexcept override { handler_ = handler; }
  int startReading() noexcept override;
  void stopReading() noexcept override { reading_ = false; }
  int write(std::span<const BufferSlice> slices) noexcept override;
  std::size_t queuedBytes() const noexcept override { return out_.size() - outAt_; }
  int shutdown() noexcept override;
  const common::SocketAddress& peer() const noexcept override { return peer_; }
  bool secure() const noexcept override { return secure_; }
  int descriptor() const noexcept override { return -1; }
  bool http2() const noexcept override { return true; }
  std::string_view tlsVersion() const noexcept override;
  bool tlsResumed() const noexcept override;
  void idle() noexcept override;

 private:
  void onBodyData(const char* data, std::size_t length) noexcept override;
  void onTrailerBytes(const char* data, std::size_t length, bool name) noexcept override;
  void onTrailerFieldEnd() noexcept override;
  bool submitHead();
  void responseBytes(const char* data, std::size_t length);
  void fail();

  Http2Session& connection_;
  StreamHandler* handler_ = nullptr;
  std::int32_t id_;
  std::uint32_t maxHeaderList_;
  std::uint32_t headerBytes_ = 0;
  common::SocketAddress peer_;

  // The request, as HTTP/1.1 bytes for the session.
  std::string method_, path_, authority_, fields_, cookie_;
  bool hasLength_ = false;
  bool chunked_ = false;  // the body is sent as chunks (the client gave no content-length)
  bool inTrailers_ = false;
  std::string in_;                         // bytes the handler has not read yet
  std::size_t inBody_ = 0, consumed_ = 0;  // DATA bytes in in_; credit to return
  bool inEnded_ = false;                   // the whole request is in in_

  // The response, parsed from the session's HTTP/1.1 bytes.
  HttpParser parser_{HttpParser::Kind::Response};
  std::string out_;  // body bytes nghttp2 has not taken yet, from outAt_
  std::size_t outAt_ = 0;
  std::string trailers_;  // "name\0value\0" pairs, lower-case names
  std::string trailerName_, trailerValue_;
  bool headSent_ = false;  // the final response head was submitted
  bool outEnded_ = false;  // the whole response body is in out_
  bool outDone_ = false;   // nghttp2 took the last of it (END_STREAM or trailers submitted)
  bool deferred_ = false;  // nghttp2 waits for resumeData

  bool secure_;
  bool tooLarge_ = false;
  bool reading_ = false;
  bool closed_ = false;         // nghttp2 closed the stream
  bool resetByPeer_ = false;    // closed before the response was complete
  bool shutdownAsked_ = false;  // the handler asked for FIN after the response
  bool shutdownReported_ = false;
  bool endReported_ = false;
  bool writtenDue_ = false;  // report onStreamWritten (queued bytes dropped)
  bool failed_ = false;      // the response could not be turned into HTTP/2
  bool exchangeDone_ = false;
};

}  // namespace molt::worker
