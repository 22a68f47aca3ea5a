#include "worker/http2/stream.hpp"

#include <uv.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <vector>

#include "worker/http/head.hpp"
#include "worker/http2/session.hpp"
#include "worker/net/buffer_pool.hpp"

namespace molt::worker {
namespace {

// Most bytes of response trailers kept (a server sending more gets them dropped).
constexpr std::size_t kMaxTrailerBytes = 64 * 1024;

// Response fields that mean something only to an HTTP/1.1 connection (RFC 9113 section 8.2.2).
bool connectionSpecific(FieldKind kind) {
  switch (kind) {
    case FieldKind::Connection:
    case FieldKind::KeepAlive:
    case FieldKind::ProxyConnection:
    case FieldKind::TransferEncoding:
    case FieldKind::Upgrade:
    case FieldKind::Te:
    case FieldKind::Trailer:
      return true;
    default:
      return false;
  }
}

nghttp2_nv field(std::string_view name, std::string_view value) {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
          value.size(), NGHTTP2_NV_FLAG_NONE};
}

void appendHex(std::string& out, std::size_t n) {
  char digits[20];
  int length = 0;
  do {
    digits[length++] = "0123456789abcdef"[n & 15];
    n >>= 4;
  } while (n);
  while (length) out += digits[--length];
}

// Strings of the request and trailers; response bodies (larger) apart.
using Spares = spares::Buffers<std::string, Http2Stream>;
struct ResponseBody;
using BodySpares = spares::Buffers<std::string, ResponseBody, 256 * 1024, 16 * 1024>;

}  // namespace

Http2Stream::Http2Stream(Http2Session& connection, std::int32_t id, bool secure,
                         const common::SocketAddress& peer, std::uint32_t maxHeaderList)
    : connection_(connection),
      id_(id),
      maxHeaderList_(maxHeaderList),
      peer_(peer),
      secure_(secure) {
  parser_.setBodySink(this);
  for (std::string* buffer : {&path_, &fields_, &in_}) Spares::take(*buffer);
  BodySpares::take(out_);
}

Http2Stream::~Http2Stream() {
  connection_.streamGone(*this);
  for (std::string* buffer : {&path_, &fields_, &in_, &trailers_}) Spares::give(*buffer);
  BodySpares::give(out_);
}

// ---- the request ----

bool Http2Stream::onField(std::string_view name, std::string_view value) {
  headerBytes_ += static_cast<std::uint32_t>(name.size() + value.size() + 32);
  if (headerBytes_ > maxHeaderList_) tooLarge_ = true;
  if (tooLarge_) return false;
  if (inTrailers_) {
    // Trailers go on only after a chunked body; nghttp2 checked they hold no pseudo-header.
    if (chunked_) ((fields_ += name) += ": ").append(value) += "\r\n";
    return true;
  }
  if (name == ":method") {
    method_ = value;
  } else if (name == ":path") {
    path_ = value;
  } else if (name == ":authority") {
    authority_ = value;
  } else if (name.starts_with(':')) {
    // :scheme (the proxy says X-Forwarded-Proto itself) and :protocol are not forwarded.
  } else if (name == "cookie") {
    // RFC 9113 section 8.2.3: split cookie fields are joined again for HTTP/1.1.
    if (!cookie_.empty()) cookie_ += "; ";
    cookie_ += value;
  } else {
    if (name == "content-length") hasLength_ = true;
    if (name == "host" && !authority_.empty()) return true;
    ((fields_ += name) += ": ").append(value) += "\r\n";
  }
  return true;
}

void Http2Stream::onHeadersEnd(bool endStream) {
  if (inTrailers_ || tooLarge_) return;
  // A request line and fields the HTTP/1.1 parser checks again: an invalid target or field is
  // refused there as from any client. Host comes from :authority (RFC 9113 section 8.3.1).
  std::string head;
  head.reserve(method_.size() + path_.size() + authority_.size() + fields_.size() + 64);
  ((head += method_) += ' ') += method_ == "CONNECT" ? authority_ : path_;
  head += " HTTP/1.1\r\n";
  if (!authority_.empty()) (head += "host: ") += authority_ + "\r\n";
  head += fields_;
  if (!cookie_.empty()) (head += "cookie: ") += cookie_ + "\r\n";
  chunked_ = !endStream && !hasLength_;
  if (chunked_) head += "transfer-encoding: chunked\r\n";
  // Keep-alive: after the response the session waits for "the next request", which is the next
  // stream's (Http2Session parks and reuses it).
  head += "\r\n";
  in_ = std::move(head);
  fields_.clear();
  fields_.shrink_to_fit();
  cookie_.clear();
  cookie_.shrink_to_fit();
  inTrailers_ = true;  // any later header block is the trailers
  parser_.setNoBody(method_ == "HEAD");
  if (endStream) onRequestEnd();
}

void Http2Stream::onBody(const std::uint8_t* data, std::size_t length) {
  if (length == 0) return;
  if (chunked_) {
    appendHex(in_, length);
    in_ += "\r\n";
  }
  in_.append(reinterpret_cast<const char*>(data), length);
  if (chunked_) in_ += "\r\n";
  inBody_ += length;
  connection_.schedule();
}

void Http2Stream::onRequestEnd() {
  if (inEnded_) return;
  inEnded_ = true;
  if (chunked_) {
    in_ += "0\r\n";
    in_ += fields_;  // the trailers, if any
    in_ += "\r\n";
    fields_.clear();
  }
  connection_.schedule();
}

void Http2Stream::onClosed(std::uint32_t error) {
  closed_ = true;
  if (!outDone_ || error != NGHTTP2_NO_ERROR) resetByPeer_ = true;
  connection_.schedule();
}

// ---- events for the handler ----

std::string_view Http2Stream::tlsVersion() const noexcept {
  return connection_.client().tlsVersion();
}

bool Http2Stream::tlsResumed() const noexcept {
  return connection_.client().tlsResumed();
}

void Http2Stream::idle() noexcept {
  exchangeDone_ = true;
  connection_.schedule();
}

int Http2Stream::startReading() noexcept {
  reading_ = true;
  connection_.schedule();
  return 0;
}

void Http2Stream::deliver() {
  if (!handler_) return;
  if (writtenDue_) {
    writtenDue_ = false;
    handler_->onStreamWritten(*this, resetByPeer_ ? UV_ECONNRESET : 0);
  }
  if (shutdownAsked_ && !shutdownReported_ && (outDone_ || resetByPeer_)) {
    shutdownReported_ = true;
    handler_->onStreamShutdown(*this, resetByPeer_ && !outDone_ ? UV_ECONNRESET : 0);
  }
  while (reading_ && !in_.empty()) {
    char* buffer = connection_.buffers().take();
    std::size_t n = std::min(in_.size(), BufferPool::kBufferSize);
    std::memcpy(buffer, in_.data(), n);
    in_.erase(0, n);
    std::size_t body = std::min(inBody_, n);  // framing bytes come first; credit is approximate
    inBody_ -= body;
    consumed_ += body;
    if (in_.empty()) consumed_ += std::exchange(inBody_, 0);
    handler_->onStreamData(*this, buffer, n);
  }
  if (!reading_ || endReported_) return;
  // The request is over: a reset ends it at once; a clean end only after the response (an
  // HTTP/1.1 client that half-closes early looks like a client that went away).
  if (resetByPeer_ || (shutdownReported_ && in_.empty())) {
    endReported_ = true;
    reading_ = false;
    handler_->onStreamEnd(*this, resetByPeer_ && !outDone_ ? UV_ECONNRESET : UV_EOF);
  }
}

std::size_t Http2Stream::takeConsumed() {
  return std::exchange(consumed_, 0);
}

// ---- the response ----

int Http2Stream::write(std::span<const BufferSlice> slices) noexcept {
  BufferPool& pool = connection_.buffers();
  bool refused = resetByPeer_ || failed_;
  for (const BufferSlice& s : slices) {
    if (!refused) responseBytes(s.buffer + s.offset, s.length);
    pool.give(s.buffer);
  }
  if (refused || failed_) return UV_ECONNRESET;
  if (queuedBytes() > 0) writtenDue_ = true;
  if (deferred_ && (queuedBytes() > 0 || outEnded_)) {
    deferred_ = false;
    nghttp2_session_resume_data(connection_.nghttp2(), id_);
  }
  connection_.schedule();
  return 0;
}

void Http2Stream::responseBytes(const char* data, std::size_t length) {
  while (!failed_) {
    ParseResult r = parser_.feed(data, length);
    data += r.consumed;
    length -= r.consumed;
    switch (r.status) {
      case ParseStatus::NeedMore:
        return;
      case ParseStatus::HeadComplete:
        if (!submitHead()) return fail();
        if (parser_.head().status() / 100 == 1) parser_.reset();  // an interim response
        break;
      case ParseStatus::MessageComplete:
        outEnded_ = true;
        return;
      case ParseStatus::Error:
        return fail();
    }
    if (length == 0 && !parser_.inBody()) return;
  }
}

bool Http2Stream::submitHead() {
  const HttpHead& head = parser_.head();
  int status = head.status();
  if (status < 100 || status > 999 || status == 101) return false;
  char statusText[4];
  auto statusEnd = std::to_chars(statusText, statusText + sizeof statusText, status).ptr;
  // Scratch kept warm between heads: nghttp2 copies the fields it is given.
  static std::vector<nghttp2_nv> nv;
  static std::string names;  // lower-case copies, stable while nv points into them
  static std::vector<std::pair<std::size_t, std::size_t>> spans;
  nv.clear();
  names.clear();
  spans.clear();
  nv.push_back(field(":status", std::string_view(statusText, statusEnd - statusText)));
  for (std::size_t i = 0; i < head.fieldCount(); ++i) {
    const HttpField& f = head.field(i);
    if (connectionSpecific(f.kind)) continue;
    std::string_view n = head.name(f);
    spans.emplace_back(names.size(), n.size());
    for (char c : n) names += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  std::size_t k = 0;
  for (std::size_t i = 0; i < head.fieldCount(); ++i) {
    const HttpField& f = head.field(i);
    if (connectionSpecific(f.kind)) continue;
    auto [at, size] = spans[k++];
    nv.push_back(field(std::string_view(names).substr(at, size), head.value(f)));
  }
  nghttp2_session* session = connection_.nghttp2();
  if (status < 200)
    return nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, id_, nullptr, nv.data(), nv.size(),
                                  nullptr) >= 0;
  headSent_ = true;
  bool body = !(method_ == "HEAD" || status == 204 || status == 304);
  if (!body) outEnded_ = outDone_ = true;
  nghttp2_data_provider provider{};
  provider.source.ptr = nullptr;
  provider.read_callback = Http2Session::readCallback;
  return nghttp2_submit_response(session, id_, nv.data(), nv.size(), body ? &provider : nullptr) ==
         0;
}

void Http2Stream::onBodyData(const char* data, std::size_t length) noexcept {
  out_.append(data, length);
}

void Http2Stream::onTrailerBytes(const char* data, std::size_t length, bool name) noexcept {
  (name ? trailerName_ : trailerValue_).append(data, length);
}

void Http2Stream::onTrailerFieldEnd() noexcept {
  std::string_view value = trailerValue_;
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  FieldKind kind = classifyField(trailerName_);
  if (!connectionSpecific(kind) && kind != FieldKind::ContentLength && kind != FieldKind::Host &&
      trailers_.size() + trailerName_.size() + value.size() < kMaxTrailerBytes) {
    for (char c : trailerName_) trailers_ += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    trailers_ += '\0';
    trailers_.append(value) += '\0';
  }
  trailerName_.clear();
  trailerValue_.clear();
}

ssize_t Http2Stream::readResponse(std::uint8_t* buffer, std::size_t length, std::uint32_t* flags) {
  std::size_t n = std::min(length, queuedBytes());
  if (n > 0) {
    std::memcpy(buffer, out_.data() + outAt_, n);
    outAt_ += n;
    if (outAt_ == out_.size()) {
      out_.clear();
      outAt_ = 0;
      if (out_.capacity() > 64 * 1024) out_.shrink_to_fit();
    } else if (outAt_ > 64 * 1024 && outAt_ * 2 > out_.size()) {
      out_.erase(0, outAt_);
      outAt_ = 0;
    }
    writtenDue_ = true;
    connection_.schedule();
  }
  if (queuedBytes() > 0 || !outEnded_) {
    if (n > 0) return static_cast<ssize_t>(n);
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  // The last of the body: END_STREAM with it, or with the trailers that follow.
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  outDone_ = true;
  if (!trailers_.empty()) {
    std::vector<nghttp2_nv> nv;
    std::string_view rest = trailers_;
    while (!rest.empty()) {
      std::size_t a = rest.find('\0');
      std::size_t b = rest.find('\0', a + 1);
      nv.push_back(field(rest.substr(0, a), rest.substr(a + 1, b - a - 1)));
      rest.remove_prefix(b + 1);
    }
    if (nghttp2_submit_trailer(connection_.nghttp2(), id_, nv.data(), nv.size()) == 0)
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  }
  connection_.schedule();
  return static_cast<ssize_t>(n);
}

int Http2Stream::shutdown() noexcept {
  if (!outEnded_ && headSent_ && parser_.inBody()) {
    // A body that lasts until the connection closes ends here.
    if (parser_.finish().status == ParseStatus::MessageComplete) outEnded_ = true;
  }
  if (!outEnded_ || !headSent_) fail();
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(connection_.nghttp2(), id_);
  }
  shutdownAsked_ = true;
  connection_.schedule();
  return 0;
}

// The response cannot go on as HTTP/2 (malformed, or cut short): the stream is reset.
void Http2Stream::fail() {
  if (failed_ || outDone_) return;
  failed_ = true;
  resetByPeer_ = true;
  if (!closed_)
    nghttp2_submit_rst_stream(connection_.nghttp2(), NGHTTP2_FLAG_NONE, id_,
                              NGHTTP2_INTERNAL_ERROR);
  connection_.schedule();
}

}  // namespace molt::worker
