// HttpParser's common case without llhttp: a head that arrived whole and holds nothing llhttp
// gives a meaning to beyond a single Content-Length and Connection: close or keep-alive. llhttp's
// byte-at-a-time state machine and its callbacks were most of the user-space work of a proxied
// request. Whatever this path does not take (a head cut short, another method or version, a
// byte outside the plain sets below, Transfer-Encoding, Upgrade, a response without a length, a
// 1xx) goes to llhttp from the same first byte. So it accepts only what llhttp with
// HttpParser::scan accepts, and must give the same head: tests/worker/http/parser_test.cpp
// compares the two paths over every byte value in every part of a head.
#include <llhttp.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "worker/http/parser.hpp"

namespace molt::worker {
namespace {

using ByteSet = std::array<bool, 256>;

constexpr bool alnum(unsigned c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

constexpr ByteSet setOf(bool (*member)(unsigned)) {
  ByteSet set{};
  for (unsigned c = 0; c < 256; ++c) set[c] = member(c);
  return set;
}

// RFC 9110 tchar: methods and field names.
constexpr ByteSet kToken = setOf([](unsigned c) {
  return alnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
});
// An origin-form target's path and query: pchar, '/' and '?'.
constexpr ByteSet kTarget = setOf([](unsigned c) {
  return alnum(c) || std::string_view("-._~!$&'()*+,;=:@%/?").find(static_cast<char>(c)) !=
                         std::string_view::npos;
});
// Field values and reason phrases: visible ASCII, space and tab (no obs-text).
constexpr ByteSet kText = setOf([](unsigned c) { return (c >= 0x20 && c < 0x7f) || c == '\t'; });

struct Method {
  std::string_view name;
  llhttp_method_t id;
};
constexpr Method kMethods[] = {
    {"GET", HTTP_GET},       {"HEAD", HTTP_HEAD},       {"POST", HTTP_POST},  {"PUT", HTTP_PUT},
    {"DELETE", HTTP_DELETE}, {"OPTIONS", HTTP_OPTIONS}, {"PATCH", HTTP_PATCH}};

const char* span(const char* p, const char* end, const ByteSet& set) {
  while (p != end && set[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

bool isCrlf(const char* p, const char* end) {
  return end - p >= 2 && p[0] == '\r' && p[1] == '\n';
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// "HTTP/1.0" or "HTTP/1.1" at p: its minor version, else -1.
int version(const char* p, const char* end) {
  if (end - p < 8 || std::memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1')) return -1;
  return p[7] - '0';
}

}  // namespace

// The request or status line at p, into head_: the minor version, or -1 when llhttp must parse it.
int HttpParser::parseWholeStartLine(const char*& p, const char* end) {
  HttpHead& h = head_;
  int minor = -1;
  if (kind_ == Kind::Request) {
    const char* methodEnd = span(p, end, kToken);
    if (methodEnd == end || *methodEnd != ' ') return -1;
    std::string_view name(p, static_cast<std::size_t>(methodEnd - p));
    const Method* method = std::find_if(std::begin(kMethods), std::end(kMethods),
                                        [name](const Method& m) { return m.name == name; });
    if (method == std::end(kMethods)) return -1;
    p = methodEnd + 1;
    const char* targetEnd = span(p, end, kTarget);
    if (p == end || *p != '/' || targetEnd == end || *targetEnd != ' ') return -1;
    h.targetAt_ = static_cast<std::uint32_t>(h.bytes_.size());
    h.targetLength_ = static_cast<std::uint32_t>(targetEnd - p);
    h.bytes_.append(p, h.targetLength_);
    p = targetEnd + 1;
    if ((minor = version(p, end)) < 0 || !isCrlf(p + 8, end)) return -1;
    p += 10;
    h.method_ = llhttp_method_name(method->id);
    methodId_ = method->id;
    return minor;
  }
  // "HTTP/1.1 200 OK": a final status (1xx and what is not 200-599 go to llhttp) and a reason
  // that does not start with whitespace.
  if ((minor = version(p, end)) < 0 || end - p < 14 || p[8] != ' ' || p[9] < '2' || p[9] > '5' ||
      !isDigit(p[10]) || !isDigit(p[11]) || p[12] != ' ' || p[13] == ' ' || p[13] == '\t')
    return -1;
  h.status_ = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
  p += 13;
  const char* reasonEnd = span(p, end, kText);
  if (!isCrlf(reasonEnd, end)) return -1;
  if (reasonEnd != p) {
    h.reasonAt_ = static_cast<std::uint32_t>(h.bytes_.size());
    h.reasonLength_ = static_cast<std::uint32_t>(reasonEnd - p);
    h.bytes_.append(p, h.reasonLength_);
  }
  p = reasonEnd + 2;
  return minor;
}

// Returns the head's length when it parsed the head into head_ (with its framing), 0 when llhttp
// must parse it (head_ is then partly filled: the caller clears it).
std::size_t HttpParser::parseWholeHead(const char* data, std::size_t length) {
  const char* const end = data + std::min(length, kMaxHeadBytes);
  const char* p = data;
  HttpHead& h = head_;
  const int minor = parseWholeStartLine(p, end);
  if (minor < 0) return 0;
  bool close = false, keepAlive = false;
  for (;;) {
    if (p == end) return 0;
    if (*p == '\r') {
      if (!isCrlf(p, end)) return 0;
      p += 2;
      break;
    }
    const char* nameEnd = span(p, end, kToken);
    if (nameEnd == p || nameEnd == end || *nameEnd != ':') return 0;
    HttpField f;
    f.nameAt = static_cast<std::uint32_t>(h.bytes_.size());
    f.nameLength = static_cast<std::uint32_t>(nameEnd - p);
    h.bytes_.append(p, f.nameLength);
    f.kind = classifyField(h.name(f));
    p = nameEnd + 1;
    while (p != end && (*p == ' ' || *p == '\t')) ++p;
    const char* valueEnd = span(p, end, kText);
    if (!isCrlf(valueEnd, end)) return 0;
    const char* trimmed = valueEnd;
    while (trimmed != p && (trimmed[-1] == ' ' || trimmed[-1] == '\t')) --trimmed;
    std::string_view value(p, static_cast<std::size_t>(trimmed - p));
    f.valueAt = static_cast<std::uint32_t>(h.bytes_.size());
    f.valueLength = static_cast<std::uint32_t>(value.size());
    h.bytes_.append(p, static_cast<std::size_t>(valueEnd - p));
    p = valueEnd + 2;
    // llhttp reads these two values itself: taken here only without trailing whitespace.
    bool bare = trimmed == valueEnd;
    switch (f.kind) {
      case FieldKind::TransferEncoding:
      case FieldKind::Upgrade:
      case FieldKind::ProxyConnection:
        return 0;
      case FieldKind::Connection:
        if (!bare)
          return 0;
        else if (equalsIgnoreCase(value, "close"))
          close = true;
        else if (equalsIgnoreCase(value, "keep-alive"))
          keepAlive = true;
        else
          return 0;
        break;
      case FieldKind::ContentLength:
        if (!bare || h.hasLength || value.empty() || value.size() > 15 ||
            !std::all_of(value.begin(), value.end(), isDigit))
          return 0;
        h.hasLength = true;
        for (char c : value) h.length = h.length * 10 + static_cast<unsigned>(c - '0');
        break;
      default:
        break;
    }
    h.fields_.push_back(f);
  }
  // RFC 9112 6.3, as onHeadersComplete: these responses never have a body.
  bool noBody = kind_ == Kind::Response && (noBody_ || h.status_ == 204 || h.status_ == 304);
  if (kind_ == Kind::Response && !noBody && !h.hasLength) return 0;  // until EOF: llhttp's
  h.versionMinor_ = static_cast<unsigned>(minor);
  h.keepAlive = minor == 1 ? !close : keepAlive;  // llhttp_should_keep_alive
  versionMajor_ = 1;
  bodyLeft_ = noBody ? 0 : h.length;
  return static_cast<std::size_t>(p - data);
}

}  // namespace molt::worker
