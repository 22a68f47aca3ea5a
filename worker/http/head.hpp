// HttpHead: a parsed request or response head (start line and header fields), as the proxy keeps
// it between parsing and rewriting.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace molt::worker {

// The header fields the proxy acts on, recognised once when parsed; everything else is Other.
enum class FieldKind : std::uint8_t {
  Other,
  Host,
  ContentLength,
  TransferEncoding,
  Connection,
  KeepAlive,
  ProxyConnection,
  Te,
  Trailer,
  Upgrade,
  XForwardedFor,
  XForwardedProto,
  XForwardedHost,
};

// Which FieldKind a header name is (ASCII case-insensitive).
FieldKind classifyField(std::string_view name);
// ASCII case-insensitive equality.
bool equalsIgnoreCase(std::string_view a, std::string_view b);
// The authority of an absolute-form target ("http://a.com:8080/x" -> "a.com:8080"); empty for
// other forms.
std::string_view targetAuthority(std::string_view target);
// The path of a target, without query ("/a/b?c" -> "/a/b"; "http://h/p?q" -> "/p").
std::string_view targetPath(std::string_view target);

// One header field: offsets into the head's byte buffer, so the buffer may grow while parsing.
struct HttpField {
  std::uint32_t nameAt = 0, nameLength = 0;
  std::uint32_t valueAt = 0, valueLength = 0;  // without leading or trailing whitespace
  FieldKind kind = FieldKind::Other;
};

// Filled by HttpParser; the views it returns stay valid until the parser starts the next message.
// The buffers keep their capacity across messages, so a keep-alive connection parses without
// allocating once warm.
class HttpHead {
 public:
  HttpHead() = default;
  // Its buffers go to the worker's spares (net/spares.hpp) for the next head.
  ~HttpHead();
  HttpHead(HttpHead&&) noexcept = default;
  HttpHead& operator=(HttpHead&&) noexcept = default;

  // Empties the head for the next message; a head without buffers yet takes spare ones.
  void clear();

  // Request line (requests only).
  std::string_view method() const { return method_; }
  std::string_view target() const { return view(targetAt_, targetLength_); }
  bool isMethod(std::string_view m) const { return method_ == m; }
  // Status line (responses only).
  int status() const { return status_; }
  std::string_view reason() const { return view(reasonAt_, reasonLength_); }
  // HTTP/1.x: x.
  unsigned versionMinor() const { return versionMinor_; }

  std::size_t fieldCount() const { return fields_.size(); }
  const HttpField& field(std::size_t i) const { return fields_[i]; }
  std::string_view name(const HttpField& f) const { return view(f.nameAt, f.nameLength); }
  std::string_view value(const HttpField& f) const { return view(f.valueAt, f.valueLength); }
  // The first field of `kind`, or null; how many there are.
  const HttpField* find(FieldKind kind) const;
  unsigned count(FieldKind kind) const;

  // Framing and connection facts, set when the head is complete.
  bool chunked = false;       // Transfer-Encoding: chunked
  bool hasLength = false;     // Content-Length present
  std::uint64_t length = 0;   // its value
  bool keepAlive = false;     // the sender allows another message on this connection
  bool upgrade = false;       // request: Connection: upgrade + Upgrade; response: 101
  bool bodyUntilEof = false;  // response: no length, no chunking: the body ends with the connection

 private:
  friend class HttpParser;
  std::string_view view(std::uint32_t at, std::uint32_t length) const {
    return std::string_view(bytes_).substr(at, length);
  }

  std::string bytes_;
  std::vector<HttpField> fields_;
  std::string_view method_;  // static text from llhttp
  std::uint32_t targetAt_ = 0, targetLength_ = 0;
  std::uint32_t reasonAt_ = 0, reasonLength_ = 0;
  int status_ = 0;
  unsigned versionMinor_ = 1;
};

}  // namespace molt::worker
