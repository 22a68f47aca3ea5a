// HttpParser: strict, streaming HTTP/1.x parsing of requests or responses over llhttp (built in
// strict mode, no lenient flag), plus the checks llhttp leaves to its user: the rules that keep
// a request from being read two ways (request smuggling). Plain heads that arrive whole are
// parsed without llhttp (whole_head.cpp), accepting only what llhttp would, alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "worker/http/head.hpp"

struct llhttp__internal_s;  // llhttp_t, kept out of this header

namespace molt::worker {

// Where the decoded body goes when the caller cannot forward the raw bytes (de-chunking).
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual void onBodyData(const char* data, std::size_t length) noexcept = 0;
  // A trailer field's name or value bytes (in pieces), then its end. Default: dropped.
  virtual void onTrailerBytes(const char* data, std::size_t length, bool name) noexcept {
    (void)data, (void)length, (void)name;
  }
  virtual void onTrailerFieldEnd() noexcept {}
};

enum class ParseStatus {
  NeedMore,         // every byte was consumed; the message goes on
  HeadComplete,     // the head ends at `consumed`; head() is complete
  MessageComplete,  // the message (body and trailers included) ends at `consumed`
  Error             // malformed; error() says how to answer
};

struct ParseResult {
  ParseStatus status;
  std::size_t consumed;  // bytes of the input that belong to this message
};

// Why a message was refused: the status to answer (requests: 400, 431, 405, 505; responses:
// 502) and a short reason for the log.
struct ParseError {
  int status = 0;
  const char* reason = "";
};

// One direction of one connection. Feed it bytes in order; it stops at each head end and each
// message end so the caller can act before the next bytes are read. Raw body bytes are the
// caller's to forward (they are consumed and reported, not copied), unless a BodySink is set.
class HttpParser {
 public:
  enum class Kind { Request, Response };
  // Start line plus header fields; larger heads are refused (431 for requests).
  static constexpr std::size_t kMaxHeadBytes = 64 * 1024;

  explicit HttpParser(Kind kind);
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  // Forgets everything and expects the start of a new message.
  void reset();
  // Parses as much of `data` as belongs to the current message; see ParseStatus. After
  // HeadComplete, feed again (even zero bytes) for the body; after MessageComplete or Error,
  // reset() before feeding again.
  ParseResult feed(const char* data, std::size_t length);
  // The input ended: completes a body that lasts until the end of the connection, else Error.
  ParseResult finish();

  // Response parsers: the request was HEAD, so the next response has no body whatever it says.
  void setNoBody(bool noBody) { noBody_ = noBody; }
  // Body bytes go to `sink` decoded (chunk framing removed) instead of being left to the caller.
  void setBodySink(BodySink* sink) { sink_ = sink; }

  const HttpHead& head() const { return head_; }
  const ParseError& error() const { return error_; }
  bool inBody() const { return state_ == State::Body; }
  // Some byte of the current message was consumed.
  bool started() const { return state_ != State::Head || headBytes_ > 0; }
  // A BodySink receives the body.
  bool decoding() const { return sink_ != nullptr; }
  // The current head was parsed whole, without llhttp (whole_head.cpp); its body is counted here.
  bool wholeHead() const { return wholeHead_; }

 private:
  enum class State {
    Head,  // reading the start line and header fields
    Body,  // head delivered; reading body (and trailers)
    Done,  // message complete; reset() before the next
    Failed
  };
  // Why llhttp was paused from a callback.
  enum class Pause { None, HeadComplete, LastChunk, MessageComplete };

  struct Callbacks;  // llhttp's callbacks (http_parser.cpp)
  friend struct Callbacks;
  struct LlhttpDelete {
    void operator()(llhttp__internal_s* p) const;
  };

  int onHeaderField(const char* at, std::size_t length);
  int onHeaderValue(const char* at, std::size_t length);
  int onHeaderFieldComplete();
  int onHeaderValueComplete();
  int onHeadersComplete();
  int append(const char* at, std::size_t length);

  void startLlhttp();
  std::size_t parseWholeHead(const char* data, std::size_t length);
  int parseWholeStartLine(const char*& p, const char* end);
  ParseResult feedBody(const char* data, std::size_t length);
  ParseResult fail(int status, const char* reason);
  bool scan(const char* data, std::size_t length);
  bool validateHead();
  bool validateRequestHead();
  bool isH2cUpgrade() const;
  bool validateFraming();

  Kind kind_;
  std::unique_ptr<llhttp__internal_s, LlhttpDelete> parser_;
  HttpHead head_;
  State state_ = State::Head;
  Pause pause_ = Pause::None;
  ParseError error_;
  BodySink* sink_ = nullptr;
  bool noBody_ = false;
  bool inName_ = false;         // a header field name is being received
  bool llhttpStarted_ = false;  // llhttp has been set up for this message
  bool wholeHead_ = false;
  std::uint64_t bodyLeft_ = 0;  // whole heads: body bytes still to come
  unsigned versionMajor_ = 1;
  int methodId_ = 0;  // llhttp_method_t
  std::size_t headBytes_ = 0;
  // Raw line checks llhttp does not make (see scan()).
  bool scanning_ = true;  // head or trailer section
  bool afterCr_ = false;
  bool lineStart_ = false;
  bool firstLine_ = true;
  unsigned firstLineSpaces_ = 0;
};

}  // namespace molt::worker
