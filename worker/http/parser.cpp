#include "worker/http/parser.hpp"

#include <llhttp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "worker/net/spares.hpp"

namespace molt::worker {
namespace {

// Bytes the raw line scan stops at; everything else is left to llhttp's own checks.
constexpr std::array<bool, 256> kSpecial = [] {
  std::array<bool, 256> t{};
  for (unsigned char c : {'\0', '\r', '\n', ' ', '\t'}) t[c] = true;
  return t;
}();

// Bytes a Host or an authority may hold: unreserved, sub-delims, '%', and ':' '[' ']' for the
// port and IP literals.
constexpr std::array<bool, 256> kHostChar = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (unsigned c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (unsigned c = '0'; c <= '9'; ++c) t[c] = true;
  for (unsigned char c : std::string_view("-._~!$&'()*+,;=%:[]")) t[c] = true;
  return t;
}();

bool validHostChar(char c) {
  return kHostChar[static_cast<unsigned char>(c)];
}

// True when the comma-separated list `value` has `token` (case-insensitive).
bool hasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (equalsIgnoreCase(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

}  // namespace

namespace {
// llhttp's state, in blocks kept for the next parser: a worker serving HTTP/2 makes three parsers
// per stream.
struct Engine : spares::Recycled<Engine, 256> {
  llhttp_t state;
};
static_assert(std::is_standard_layout_v<Engine>);
}  // namespace

void HttpParser::LlhttpDelete::operator()(llhttp__internal_s* p) const {
  delete reinterpret_cast<Engine*>(p);
}

struct HttpParser::Callbacks {
  static HttpParser& of(llhttp_t* p) { return *static_cast<HttpParser*>(p->data); }

  static int target(llhttp_t* p, const char* at, std::size_t n) {
    HttpParser& self = of(p);
    if (self.head_.targetLength_ == 0)
      self.head_.targetAt_ = static_cast<std::uint32_t>(self.head_.bytes_.size());
    self.head_.targetLength_ += static_cast<std::uint32_t>(n);
    return self.append(at, n);
  }
  static int reason(llhttp_t* p, const char* at, std::size_t n) {
    HttpParser& self = of(p);
    if (self.head_.reasonLength_ == 0)
      self.head_.reasonAt_ = static_cast<std::uint32_t>(self.head_.bytes_.size());
    self.head_.reasonLength_ += static_cast<std::uint32_t>(n);
    return self.append(at, n);
  }
  static int chunkHeader(llhttp_t* p) {
    if (p->content_length != 0) return 0;
    of(p).pause_ = Pause::LastChunk;
    return HPE_PAUSED;
  }
  static int body(llhttp_t* p, const char* at, std::size_t n) {
    if (BodySink* sink = of(p).sink_) sink->onBodyData(at, n);
    return 0;
  }
  static int messageComplete(llhttp_t* p) {
    of(p).pause_ = Pause::MessageComplete;
    return HPE_PAUSED;
  }

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_url = target;
      s.on_status = reason;
      s.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) {
        return of(p).onHeaderField(at, n);
      };
      s.on_header_field_complete = [](llhttp_t* p) { return of(p).onHeaderFieldComplete(); };
      s.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) {
        return of(p).onHeaderValue(at, n);
      };
      s.on_header_value_complete = [](llhttp_t* p) { return of(p).onHeaderValueComplete(); };
      s.on_headers_complete = [](llhttp_t* p) { return of(p).onHeadersComplete(); };
      s.on_chunk_header = chunkHeader;
      s.on_body = body;
      s.on_message_complete = messageComplete;
      return s;
    }();
    return s;
  }
};

HttpParser::HttpParser(Kind kind) : kind_(kind), parser_(&(new Engine{})->state) {
  reset();
}

void HttpParser::reset() {
  llhttpStarted_ = false;  // set up when first needed: most heads never need it
  wholeHead_ = false;
  bodyLeft_ = 0;
  versionMajor_ = 1;
  methodId_ = 0;
  head_.clear();
  state_ = State::Head;
  pause_ = Pause::None;
  error_ = {};
  inName_ = false;
  headBytes_ = 0;
  scanning_ = true;
  afterCr_ = false;
  lineStart_ = false;
  firstLine_ = true;
  firstLineSpaces_ = 0;
}

void HttpParser::startLlhttp() {
  llhttp_init(parser_.get(), kind_ == Kind::Request ? HTTP_REQUEST : HTTP_RESPONSE,
              &Callbacks::settings());
  parser_->data = this;
  llhttpStarted_ = true;
}

int HttpParser::append(const char* at, std::size_t length) {
  if (state_ == State::Body) return 0;  // trailer fields: checked and counted, not kept
  if (head_.bytes_.size() + length > kMaxHeadBytes) {
    error_ = {kind_ == Kind::Request ? 431 : 502, "head too large"};
    return HPE_USER;
  }
  head_.bytes_.append(at, length);
  return 0;
}

int HttpParser::onHeaderField(const char* at, std::size_t length) {
  if (state_ == State::Body) {
    if (sink_) sink_->onTrailerBytes(at, length, true);
    return append(at, length);
  }
  if (!inName_) {
    HttpField f;
    f.nameAt = static_cast<std::uint32_t>(head_.bytes_.size());
    head_.fields_.push_back(f);
    inName_ = true;
  }
  head_.fields_.back().nameLength += static_cast<std::uint32_t>(length);
  return append(at, length);
}

int HttpParser::onHeaderFieldComplete() {
  inName_ = false;
  if (state_ == State::Body) return 0;
  HttpField& f = head_.fields_.back();
  f.kind = classifyField(head_.name(f));
  f.valueAt = static_cast<std::uint32_t>(head_.bytes_.size());
  return 0;
}

int HttpParser::onHeaderValue(const char* at, std::size_t length) {
  if (state_ != State::Body)
    head_.fields_.back().valueLength += static_cast<std::uint32_t>(length);
  else if (sink_)
    sink_->onTrailerBytes(at, length, false);
  return append(at, length);
}

int HttpParser::onHeaderValueComplete() {
  if (state_ == State::Body) {
    if (sink_) sink_->onTrailerFieldEnd();
    return 0;
  }
  HttpField& f = head_.fields_.back();
  while (f.valueLength > 0) {
    char last = head_.bytes_[f.valueAt + f.valueLength - 1];
    if (last != ' ' && last != '\t') break;
    --f.valueLength;
  }
  return 0;
}

int HttpParser::onHeadersComplete() {
  HttpHead& h = head_;
  versionMajor_ = parser_->http_major;
  h.versionMinor_ = parser_->http_minor;
  if (kind_ == Kind::Request) {
    methodId_ = parser_->method;
    h.method_ = llhttp_method_name(static_cast<llhttp_method_t>(parser_->method));
  } else {
    h.status_ = parser_->status_code;
    // RFC 9112 6.3: these never have a body, whatever their fields say.
    if (noBody_ || h.status_ / 100 == 1 || h.status_ == 204 || h.status_ == 304)
      parser_->flags |= F_SKIPBODY;
  }
  h.chunked = (parser_->flags & F_CHUNKED) != 0;
  h.hasLength = (parser_->flags & F_CONTENT_LENGTH) != 0;
  h.length = h.hasLength ? parser_->content_length : 0;
  h.upgrade = parser_->upgrade != 0;
  h.bodyUntilEof = llhttp_message_needs_eof(parser_.get()) != 0;
  h.keepAlive = llhttp_should_keep_alive(parser_.get()) != 0;
  pause_ = Pause::HeadComplete;
  return HPE_PAUSED;
}

ParseResult HttpParser::fail(int status, const char* reason) {
  if (error_.status == 0) error_ = {status, reason};
  state_ = State::Failed;
  return {ParseStatus::Error, 0};
}

ParseResult HttpParser::feed(const char* data, std::size_t length) {
  if (state_ == State::Failed || state_ == State::Done) return {ParseStatus::Error, 0};
  const int bad = kind_ == Kind::Request ? 400 : 502;
  if (wholeHead_) return feedBody(data, length);
  if (!llhttpStarted_) {
    if (length == 0) return {ParseStatus::NeedMore, 0};
    if (std::size_t used = parseWholeHead(data, length)) {
      wholeHead_ = true;
      headBytes_ = used;
      if (!validateHead()) return fail(error_.status, error_.reason);
      state_ = State::Body;
      scanning_ = false;
      return {ParseStatus::HeadComplete, used};
    }
    head_.clear();
    startLlhttp();
  }
  std::size_t done = 0;
  for (;;) {
    pause_ = Pause::None;
    llhttp_errno_t rc = llhttp_execute(parser_.get(), data + done, length - done);
    std::size_t end = length;
    if (rc != HPE_OK) {
      // Within this call's input, or the position is unknown (some errors give none).
      const char* pos = llhttp_get_error_pos(parser_.get());
      bool inside = pos && pos >= data + done && pos <= data + length;
      end = inside ? static_cast<std::size_t>(pos - data) : done;
    }
    if (scanning_ && !scan(data + done, end - done)) return fail(bad, error_.reason);
    if (scanning_) headBytes_ += end - done;
    done = end;
    if (headBytes_ > kMaxHeadBytes)
      return fail(state_ == State::Head && kind_ == Kind::Request ? 431 : bad, "head too large");
    if (rc == HPE_OK) return {ParseStatus::NeedMore, length};
    if (rc != HPE_PAUSED)
      return fail(rc == HPE_USER ? error_.status : bad, llhttp_get_error_reason(parser_.get()));
    llhttp_resume(parser_.get());
    switch (pause_) {
      case Pause::HeadComplete:
        if (!validateHead()) return fail(error_.status, error_.reason);
        state_ = State::Body;
        scanning_ = false;
        return {ParseStatus::HeadComplete, done};
      case Pause::LastChunk:
        // The trailer section follows: lines again, checked like the head's.
        scanning_ = true;
        lineStart_ = true;
        firstLine_ = false;
        headBytes_ = 0;
        continue;
      case Pause::MessageComplete:
        state_ = State::Done;
        return {ParseStatus::MessageComplete, done};
      case Pause::None:
        return fail(bad, "parser paused unexpectedly");
    }
  }
}

ParseResult HttpParser::feedBody(const char* data, std::size_t length) {
  std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(bodyLeft_, length));
  if (n > 0 && sink_) sink_->onBodyData(data, n);
  bodyLeft_ -= n;
  if (bodyLeft_ > 0) return {ParseStatus::NeedMore, n};
  state_ = State::Done;
  return {ParseStatus::MessageComplete, n};
}

ParseResult HttpParser::finish() {
  if (state_ != State::Body || !head_.bodyUntilEof)
    return fail(kind_ == Kind::Request ? 400 : 502, "truncated message");
  llhttp_errno_t rc = llhttp_finish(parser_.get());
  if (rc != HPE_OK && rc != HPE_PAUSED) return fail(502, llhttp_get_error_reason(parser_.get()));
  state_ = State::Done;
  return {ParseStatus::MessageComplete, 0};
}

// What llhttp (8.x) lets through and a proxy must not: NUL bytes, a CR not followed by LF, a LF
// not preceded by CR, obs-fold (a field line starting with whitespace), and a request line
// with other than exactly two single spaces.
bool HttpParser::scan(const char* data, std::size_t length) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  // The state lives in locals while the loop runs: `data` may alias any member, so the compiler
  // would otherwise load and store each of them for every byte.
  bool afterCr = afterCr_;
  bool lineStart = lineStart_;
  bool firstLine = firstLine_;
  unsigned spaces = firstLineSpaces_;
  const bool request = kind_ == Kind::Request;
  const char* p = data;
  const char* const end = data + length;
  const char* failure = nullptr;
  while (p != end) {
    if (!afterCr) {
      // Every special byte (NUL, CR, LF, space, tab) is below 0x21, so eight bytes at a time
      // tell where the next one may be. The lowest flagged byte is exact (only bytes above a
      // real one can be flagged falsely): everything before it is plain and skipped.
      while (end - p >= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        std::uint64_t flagged = (v - kOnes * 0x21) & ~v & (kOnes * 0x80);
        if (flagged == 0) {
          p += 8;
          lineStart = false;
          continue;
        }
        if constexpr (std::endian::native == std::endian::little) {
          if (int plain = std::countr_zero(flagged) / 8; plain > 0) {
            p += plain;
            lineStart = false;
          }
        }
        break;
      }
      if (p == end) break;
    }
    auto c = static_cast<unsigned char>(*p++);
    if (afterCr) {
      if (c != '\n') {
        failure = "bare CR";
        break;
      }
      afterCr = false;
      lineStart = true;
      firstLine = false;
      continue;
    }
    if (!kSpecial[c]) {
      lineStart = false;
      continue;
    }
    if (c == '\r') {
      afterCr = true;
    } else if (c == '\0') {
      failure = "NUL byte";
      break;
    } else if (c == '\n') {
      failure = "bare LF";
      break;
    } else if (lineStart && !firstLine) {  // space or tab
      failure = "obs-fold";
      break;
    } else if (firstLine && request && (c == '\t' || ++spaces > 2)) {
      failure = "malformed request line";
      break;
    }
    lineStart = false;
  }
  afterCr_ = afterCr;
  lineStart_ = lineStart;
  firstLine_ = firstLine;
  firstLineSpaces_ = spaces;
  if (failure) return error_ = {0, failure}, false;
  return true;
}

bool HttpParser::validateHead() {
  const int bad = kind_ == Kind::Request ? 400 : 502;
  if (versionMajor_ != 1 || head_.versionMinor_ > 1) {
    error_ = {kind_ == Kind::Request ? 505 : 502, "unsupported HTTP version"};
    return false;
  }
  for (const HttpField& f : head_.fields_) {
    if (f.nameLength == 0) return error_ = {bad, "empty header name"}, false;
  }
  if (kind_ == Kind::Request && !validateRequestHead()) return false;
  return validateFraming();
}

bool HttpParser::validateRequestHead() {
  if (methodId_ == HTTP_CONNECT) return error_ = {405, "CONNECT is not supported"}, false;
  std::string_view target = head_.target();
  bool origin = !target.empty() && target[0] == '/';
  bool asterisk = target == "*" && methodId_ == HTTP_OPTIONS;
  bool absolute =
      (startsWithIgnoreCase(target, "http://") || startsWithIgnoreCase(target, "https://")) &&
      !targetAuthority(target).empty();
  if (!origin && !asterisk && !absolute) return error_ = {400, "bad request target"}, false;
  // The authority routes the request like Host: held to the same characters (no userinfo:
  // "http://x@admin.example.com/" must not reach a server as another host than it was routed on).
  for (char c : targetAuthority(target))
    if (!validHostChar(c)) return error_ = {400, "bad authority in request target"}, false;
  unsigned hosts = head_.count(FieldKind::Host);
  if (hosts > 1 || (hosts == 0 && head_.versionMinor_ == 1))
    return error_ = {400, "missing or repeated Host"}, false;
  if (const HttpField* host = head_.find(FieldKind::Host)) {
    for (char c : head_.value(*host))
      if (!validHostChar(c)) return error_ = {400, "bad Host"}, false;
  }
  // An upgrade carries no body: bytes after its head belong to the protocol upgraded to, so a
  // body here is a request hidden where a server may read another (refused before the head goes
  // on).
  if (head_.upgrade && (head_.chunked || (head_.hasLength && head_.length > 0)) && !isH2cUpgrade())
    return error_ = {400, "upgrade with a body"}, false;
  // An upgrade to cleartext HTTP/2 is not tunnelled (a tunnel would carry requests past molt's
  // routing): the request goes on as plain HTTP/1.1, without Upgrade, and the connection closes
  // after its response.
  if (isH2cUpgrade()) {
    head_.upgrade = false;
    head_.keepAlive = false;
  }
  return true;
}

bool HttpParser::isH2cUpgrade() const {
  if (!head_.upgrade) return false;
  const HttpField* upgrade = head_.find(FieldKind::Upgrade);
  return upgrade && hasToken(head_.value(*upgrade), "h2c");
}

// Only one way to frame a body: a single Content-Length, or a single Transfer-Encoding that is
// exactly "chunked" (in HTTP/1.1), never both.
bool HttpParser::validateFraming() {
  const int bad = kind_ == Kind::Request ? 400 : 502;
  unsigned codings = head_.count(FieldKind::TransferEncoding);
  unsigned lengths = head_.count(FieldKind::ContentLength);
  if (lengths > 1) return error_ = {bad, "repeated Content-Length"}, false;
  if (codings == 0) return true;
  if (lengths > 0) return error_ = {bad, "Content-Length with Transfer-Encoding"}, false;
  if (codings > 1) return error_ = {bad, "repeated Transfer-Encoding"}, false;
  if (head_.versionMinor_ == 0) return error_ = {bad, "Transfer-Encoding in HTTP/1.0"}, false;
  if (!equalsIgnoreCase(head_.value(*head_.find(FieldKind::TransferEncoding)), "chunked") ||
      !head_.chunked)
    return error_ = {bad, "Transfer-Encoding other than chunked"}, false;
  return true;
}

}  // namespace molt::worker
