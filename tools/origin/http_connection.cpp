// HttpConnection: the input side — llhttp parsing, one request at a time, backpressure, EOF and
// the lingering close. What each path answers is in http_routes.cpp.
#include "tools/origin/http_connection.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <utility>

#include "common/log.hpp"
#include "tools/origin/http_util.hpp"

namespace molt::origin {
namespace {

// Request target plus header block; larger requests are refused with 431.
constexpr std::size_t kMaxHeadBytes = 64 * 1024;
// After our FIN, how long client bytes are still read and dropped. Closing with unread input
// makes the kernel send a reset, which can destroy the response before the client reads it.
constexpr std::uint64_t kLingerMs = 1000;

}  // namespace

HttpConnection::HttpConnection(ConnectionSet& set, HttpShared& shared)
    : Connection(set), shared_(shared) {
  llhttp_init(&parser_, HTTP_REQUEST, &parserSettings());
  parser_.data = this;
  ++shared_.stats.connectionsTotal;
  ++shared_.stats.connectionsOpen;
}

HttpConnection::~HttpConnection() {
  --shared_.stats.connectionsOpen;
  release(stash_.block);
}

const llhttp_settings_t& HttpConnection::parserSettings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = [](llhttp_t* p) { return of(p).onMessageBegin(); };
    s.on_url = [](llhttp_t* p, const char* at, std::size_t n) { return of(p).onTarget(at, n); };
    s.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) {
      return of(p).onHeaderField(at, n);
    };
    s.on_header_field_complete = [](llhttp_t* p) { return of(p).onHeaderFieldComplete(); };
    s.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) {
      return of(p).onHeaderValue(at, n);
    };
    s.on_header_value_complete = [](llhttp_t* p) { return of(p).onHeaderValueComplete(); };
    s.on_headers_complete = [](llhttp_t* p) { return of(p).onHeadersComplete(); };
    s.on_body = [](llhttp_t* p, const char* at, std::size_t n) { return of(p).onBody(at, n); };
    s.on_message_complete = [](llhttp_t* p) { return of(p).onMessageComplete(); };
    return s;
  }();
  return settings;
}

HttpConnection& HttpConnection::of(llhttp_t* parser) {
  return *static_cast<HttpConnection*>(parser->data);
}

void HttpConnection::onRead(Block* block, std::size_t length) {
  if (phase_ == Phase::WebSocket) {
    feedWebSocket(block, block->data, length);
  } else if (phase_ == Phase::Http) {
    if (stash_.block) {
      common::log::error("http connection: read while input is stashed");
      std::abort();
    }
    consume(block, 0, length);
  }
  afterIo();
}

void HttpConnection::onEof() {
  peerEof_ = true;
  if (phase_ == Phase::Draining && shutdownDone_) {
    close();
  } else if (phase_ == Phase::WebSocket) {
    startDrain();
  }
  afterIo();
}

void HttpConnection::onWritten() {
  if (pending_ == Pending::Size) produceSize();
  resumeInput();
  afterIo();
}

void HttpConnection::onShutdown() {
  shutdownDone_ = true;
  if (peerEof_) {
    close();
  } else {
    startTimer(kLingerMs);
  }
}

void HttpConnection::onTimerFired(uv_timer_t* timer) {
  auto* self = static_cast<HttpConnection*>(timer->data);
  if (!self) return;
  self->onTimer();
  self->reapIfClosed();
}

void HttpConnection::onTimer() {
  if (phase_ == Phase::Draining) {
    close();
    return;
  }
  if (pending_ == Pending::Slow) {
    respond(200, {}, "slow\n");
  } else if (pending_ == Pending::SlowBody) {
    writeChunk(nullptr, "x", 1);
    if (--bodyLeft_ == 0) {
      endChunks();
      finishResponse();
    } else {
      startTimer(intervalMs_);
    }
  }
  resumeInput();
  afterIo();
}

void HttpConnection::startTimer(std::uint64_t ms) {
  if (!timer_) {
    timer_.emplace();
    uv_timer_init(tcp_->loop, (*timer_).get());
    (*timer_)->data = this;
  }
  uv_timer_start((*timer_).get(), &HttpConnection::onTimerFired, ms, 0);
}

// Parses until the input ends or a response must be finished first; what is left waits in the
// stash. llhttp pauses after every message (onMessageComplete), which is what keeps pipelined
// responses in order.
void HttpConnection::consume(Block* block, std::size_t offset, std::size_t end) {
  while (offset < end && phase_ == Phase::Http && !closed()) {
    if (!canParse()) {
      retain(block);
      stash_ = Stash{block, offset, end};
      return;
    }
    parsing_ = block;
    llhttp_errno_t error = llhttp_execute(&parser_, block->data + offset, end - offset);
    parsing_ = nullptr;
    if (error == HPE_OK) return;
    if (error != HPE_PAUSED && error != HPE_PAUSED_UPGRADE) {
      onParseError(error);
      return;
    }
    offset = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - block->data);
    if (phase_ == Phase::WebSocket) {
      feedWebSocket(block, block->data + offset, end - offset);
      return;
    }
    if (!keepAlive_) return;  // this response is the last; whatever follows is dropped
    llhttp_resume(&parser_);
  }
}

void HttpConnection::feedWebSocket(Block* block, char* data, std::size_t length) {
  if (websocket_.feed(out_, block, data, length) != WebSocketEcho::Result::Continue) {
    startDrain();
  }
}

bool HttpConnection::canParse() const {
  bool answering = request_.complete && pending_ != Pending::None;
  return !answering && out_.queued() < kWriteHighWater;
}

bool HttpConnection::wantRead() const {
  if (peerEof_) return false;
  switch (phase_) {
    case Phase::Http:
      return !stash_.block && out_.queued() < kWriteHighWater;
    case Phase::WebSocket:
      return out_.queued() < kWriteHighWater;
    case Phase::Draining:
      return true;
  }
  return false;
}

void HttpConnection::resumeInput() {
  if (phase_ != Phase::Http || !stash_.block || !canParse()) return;
  Stash stash = std::exchange(stash_, Stash{});
  consume(stash.block, stash.offset, stash.end);
  release(stash.block);
}

// Every entry point ends here: sends what was produced and decides about reading and closing.
void HttpConnection::afterIo() {
  if (closed()) return;
  if (phase_ == Phase::Http && peerEof_ && !stash_.block) {
    if (request_.inMessage) {
      close();  // the request was cut off; there is nothing to answer
      return;
    }
    if (pending_ == Pending::None) startDrain();
  }
  if (out_.flush() != 0) {
    close();
    return;
  }
  if (phase_ == Phase::Draining && !shutdownSent_) {
    shutdownSent_ = true;
    shutdownWrite();
  }
  setReading(wantRead());
}

void HttpConnection::startDrain() {
  phase_ = Phase::Draining;
  release(stash_.block);
  stash_ = Stash{};
}

void HttpConnection::onParseError(llhttp_errno_t error) {
  if (pending_ != Pending::None) {
    close();  // the echo response has begun; cutting it short is the only signal left
    return;
  }
  keepAlive_ = false;
  request_.head = false;
  int status = headTooLarge_ ? 431 : 400;
  respond(status, "text/plain", fmt::format("{}\n", llhttp_errno_name(error)));
}

int HttpConnection::onMessageBegin() {
  request_ = Request{};
  request_.inMessage = true;
  headTooLarge_ = false;
  return 0;
}

int HttpConnection::appendHead(std::string& to, const char* at, std::size_t length) {
  if (request_.target.size() + request_.headers.size() + length > kMaxHeadBytes) {
    headTooLarge_ = true;
    return HPE_USER;
  }
  to.append(at, length);
  return 0;
}

int HttpConnection::onTarget(const char* at, std::size_t length) {
  return appendHead(request_.target, at, length);
}

int HttpConnection::onHeaderField(const char* at, std::size_t length) {
  return appendHead(request_.headers, at, length);
}

int HttpConnection::onHeaderFieldComplete() {
  request_.headers += ": ";
  request_.valueStart = request_.headers.size();
  return 0;
}

int HttpConnection::onHeaderValue(const char* at, std::size_t length) {
  return appendHead(request_.headers, at, length);
}

int HttpConnection::onHeaderValueComplete() {
  std::string_view all(request_.headers);
  std::string_view name =
      all.substr(request_.lineStart, request_.valueStart - 2 - request_.lineStart);
  std::string_view value = trimWhitespace(all.substr(request_.valueStart));
  if (equalsIgnoreCase(name, "upgrade")) {
    request_.upgradeWebsocket = equalsIgnoreCase(value, "websocket");
  } else if (equalsIgnoreCase(name, "sec-websocket-key")) {
    request_.keyStart = static_cast<std::size_t>(value.data() - all.data());
    request_.keyLength = value.size();
  } else if (equalsIgnoreCase(name, "expect")) {
    request_.expectContinue = equalsIgnoreCase(value, "100-continue");
  }
  request_.headers += '\n';
  request_.lineStart = request_.headers.size();
  return 0;
}

int HttpConnection::onHeadersComplete() {
  ++shared_.stats.requestsTotal;
  request_.head = parser_.method == HTTP_HEAD;
  request_.http11 = parser_.http_major > 1 || (parser_.http_major == 1 && parser_.http_minor >= 1);
  keepAlive_ = llhttp_should_keep_alive(&parser_) != 0;
  bool hasBody = (parser_.flags & F_CHUNKED) || parser_.content_length > 0;
  if (request_.expectContinue && request_.http11 && hasBody)
    out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  if (targetPath(request_.target) == "/echo") startEcho();
  return 0;
}

int HttpConnection::onBody(const char* at, std::size_t length) {
  if (pending_ == Pending::Echo) writeChunk(parsing_, at, length);
  return 0;
}

int HttpConnection::onMessageComplete() {
  request_.inMessage = false;
  request_.complete = true;
  if (pending_ == Pending::Echo) {
    endChunks();
    finishResponse();
  } else {
    route();
  }
  return HPE_PAUSED;
}

}  // namespace molt::origin
