// HttpSession, client side: reading and checking requests, routing them, streaming their bodies
// to the server, and the responses the proxy makes itself.
#include <cstring>

#include "common/log.hpp"
#include "worker/http/rewrite.hpp"
#include "worker/http/session.hpp"

namespace molt::worker {
namespace {

// Requests with these methods carry nothing that repeating them could do twice.
bool idempotent(const HttpHead& head) {
  return head.isMethod("GET") || head.isMethod("HEAD") || head.isMethod("OPTIONS");
}

}  // namespace

void HttpSession::onClientData(char* buffer, std::size_t length) {
  if (input_.buffer) {
    // Reading is stopped whenever input is pending; a read now would reorder bytes.
    common::log::error("http session: client input while {} bytes are pending", input_.size());
    std::abort();
  }
  input_ = Input{buffer, 0, static_cast<std::uint32_t>(length)};
  if (phase_ == HttpPhase::Idle) {
    phase_ = HttpPhase::Head;
    phaseSince_ = uv_now(host_.loop());
    armTimer();
  }
  if (tStart_ == 0) tStart_ = uv_hrtime();
  if (http2_ && phase_ == HttpPhase::Head) {
    http2_ = false;  // only a connection's first bytes may open HTTP/2
    if (startsHttp2()) return becomeHttp2();
  }
  // Bytes that cannot be used now (a pipelined request, a body before the server is ready)
  // stay in input_, and reading stops until they are used.
  processRequest();
  updateClientReading();
}

void HttpSession::onClientEnd(int status) {
  bool eof = status == UV_EOF;
  if (eof && phase_ == HttpPhase::Closing && !clientShut_) {
    clientEof_ = true;  // our FIN is still behind queued bytes: let them go first
    return;
  }
  if (phase_ == HttpPhase::Closing || phase_ == HttpPhase::Idle ||
      (phase_ == HttpPhase::Head && tStart_ == 0))
    return finish(nullptr);
  if (eof && request_ == RequestState::Complete) {
    // A half-close after a complete request: the response still goes out, then we close.
    clientEof_ = true;
    closeAfter_ = true;
    return;
  }
  finish(eof ? "client closed the connection" : uv_strerror(status));
}

// The connection speaks HTTP/2 from its first byte: an Http2Session serves it from here, with
// the bytes read; this session ends without a word.
void HttpSession::becomeHttp2() {
  std::string_view bytes(input_.buffer + input_.offset, input_.size());
  host_.startHttp2(std::move(client_), frontend_, router_, bytes);
  releaseInput();
  phase_ = HttpPhase::Done;
  timerDue_ = UINT64_MAX;
  uv_timer_stop(timer_.get());
  host_.sessionEnded(this);
}

// The client's first bytes are the HTTP/2 preface's first line ("PRI" is no HTTP/1.1 method:
// RFC 9113 section 3.4), on a bind that accepts HTTP/2. The Http2Session checks the rest.
bool HttpSession::startsHttp2() const {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n";
  if (requestParser_.started()) return false;
  std::string_view bytes(input_.buffer + input_.offset, input_.size());
  return bytes.size() >= 4 && kPreface.starts_with(bytes.substr(0, kPreface.size()));
}

void HttpSession::processRequest() {
  if (request_ == RequestState::Head) {
    static const char kNone = 0;
    const char* data = input_.buffer ? input_.buffer + input_.offset : &kNone;
    ParseResult r = requestParser_.feed(data, input_.size());
    if (r.status == ParseStatus::NeedMore) {
      bytesIn_ += input_.size();
      return releaseInput();
    }
    if (r.status != ParseStatus::HeadComplete) {
      releaseInput();
      const ParseError& e = requestParser_.error();
      return respondLocal(e.status, e.reason, true);
    }
    bytesIn_ += r.consumed;
    input_.offset += static_cast<std::uint32_t>(r.consumed);
    tHead_ = uv_hrtime();
    request_ = RequestState::Body;
    const HttpHead& head = requestParser_.head();
    if (!head.chunked && head.length == 0) {
      // No body: step the parser to the message's end now, so the request is complete.
      ParseResult end = requestParser_.feed(data + r.consumed, 0);
      if (end.status == ParseStatus::MessageComplete) request_ = RequestState::Complete;
    }
    return onRequestHead();
  }
  if (request_ == RequestState::Body && phase_ == HttpPhase::Exchange) parseRequestBody();
}

void HttpSession::onRequestHead() {
  const HttpHead& head = requestParser_.head();
  headRequest_ = head.isMethod("HEAD");
  if (!head.keepAlive) closeAfter_ = true;
  backend_ = routeRequest();
  bool mustClose = request_ != RequestState::Complete;
  std::uint64_t limit = frontend_->maxRequestBody;
  if (limit && !head.chunked && head.length > limit)
    return respondLocal(413, "request body too large", true);
  if (!backend_) return respondLocal(503, "no route", mustClose);
  if (int deny = backend_->config().deny) return respondLocal(deny, "denied", mustClose);
  connectServer();
}

std::shared_ptr<Backend> HttpSession::routeRequest() {
  if (!router_) return nullptr;
  const HttpHead& head = requestParser_.head();
  std::string_view host = targetAuthority(head.target());
  if (host.empty()) {
    if (const HttpField* f = head.find(FieldKind::Host)) host = head.value(*f);
  }
  // Routed on the normalised host, and the same goes upstream (no server may read another).
  std::string_view authority = Router::normalizeAuthority(host, upstreamHost_);
  Backend* backend = router_->route(Router::hostOf(authority), targetPath(head.target()));
  return backend ? backend->shared_from_this() : nullptr;
}

void HttpSession::parseRequestBody() {
  static const char kNone = 0;
  const char* data = input_.buffer ? input_.buffer + input_.offset : &kNone;
  ParseResult r = requestParser_.feed(data, input_.size());
  if (r.status == ParseStatus::Error) {
    releaseInput();
    serverReusable_ = false;
    if (response_ == ResponseState::Waiting) {
      const ParseError& e = requestParser_.error();
      return respondLocal(e.status, e.reason, true);
    }
    return finish(requestParser_.error().reason);
  }
  bool complete = r.status == ParseStatus::MessageComplete;
  std::size_t consumed = complete ? r.consumed : input_.size();
  // A chunked body has no declared length: it is stopped once it passes the limit (counted with
  // its chunk framing, a few bytes per chunk).
  if (std::uint64_t limit = frontend_->maxRequestBody; limit && bodySent_ + consumed > limit) {
    releaseInput();
    serverReusable_ = false;
    if (response_ == ResponseState::Waiting)
      return respondLocal(413, "request body too large", true);
    return finish("request body too large");
  }
  forwardRequestBytes(consumed);
  if (phase_ != HttpPhase::Exchange) return;  // the write failed and the exchange ended
  if (complete) {
    request_ = RequestState::Complete;
    if (response_ == ResponseState::Complete) return endExchange();
  }
  updateClientReading();
  armTimer();
}

// Sends the next `consumed` input bytes (raw body, framing included) to the server. When the
// message ends inside the buffer, what follows (a pipelined request, tunnel bytes) moves to a
// buffer of its own: a buffer handed to a write belongs to that write.
void HttpSession::forwardRequestBytes(std::size_t consumed) {
  bytesIn_ += consumed;
  bodySent_ += consumed;
  if (consumed == 0) {
    if (input_.size() == 0) releaseInput();
    return;
  }
  BufferSlice slice{input_.buffer, input_.offset, static_cast<std::uint32_t>(consumed)};
  if (consumed == input_.size()) {
    input_ = Input{};
  } else {
    auto rest = static_cast<std::uint32_t>(input_.size() - consumed);
    char* copy = host_.buffers().take();
    std::memcpy(copy, input_.buffer + input_.offset + consumed, rest);
    input_ = Input{copy, 0, rest};
  }
  serverActive_ = uv_now(host_.loop());  // the server timeout counts from the last progress
  if (int rc = server_->write({&slice, 1}); rc < 0) return onServerFailed(uv_strerror(rc));
  if (server_->queuedBytes() > kHighWater) clientPaused_ = true;
}

// Repeating a request is safe only if nothing of it could be acted on twice (an idempotent
// method, RFC 9110 9.2.2), all of it can be sent again (no body went out: bodies are streamed, not
// kept) and nothing came back.
bool HttpSession::canRepeatRequest() const {
  return request_ == RequestState::Complete && bodySent_ == 0 &&
         response_ == ResponseState::Waiting && !responseParser_.started() &&
         idempotent(requestParser_.head());
}

bool HttpSession::canRetryOnFreshConnection() const {
  // A pooled connection the server closed just before our request reached it: the classic
  // keep-alive race.
  return reused_ && !retriedFresh_ && canRepeatRequest();
}

// Answers the current request with the proxy's own response. `mustClose`: the connection cannot
// carry another request (unread body, malformed input, an exchange cut short).
void HttpSession::respondLocal(int status, const char* why, bool mustClose) {
  releaseServer(false);
  if (mustClose || request_ != RequestState::Complete) closeAfter_ = true;
  status_ = status;
  if (tResponse_ == 0) tResponse_ = uv_hrtime();
  ResponseFraming framing;
  framing.close = closeAfter_;
  framing.keepAlive = !closeAfter_ && requestParser_.head().versionMinor() == 0;
  chain_.clear();
  writeLocalResponse(status, framing, headRequest_, chain_);
  bytesOut_ += chain_.size();
  queueOut(chain_);
  response_ = ResponseState::Complete;
  if (!flushOut()) return;
  logExchange(why);
  if (closeAfter_) return startClosing();
  beginRequest();
}

void HttpSession::releaseInput() {
  if (input_.buffer) host_.buffers().give(input_.buffer);
  input_ = Input{};
}

}  // namespace molt::worker
