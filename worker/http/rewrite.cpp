#include "worker/http/rewrite.hpp"

#include <array>

namespace molt::worker {
namespace {

// Names listed in Connection fields: those fields are hop-by-hop too (RFC 9110 7.6.1). Names
// past kMaxTokens are not honoured; close, keep-alive and upgrade are handled by kind.
class ConnectionTokens {
 public:
  explicit ConnectionTokens(const HttpHead& head) {
    for (std::size_t i = 0; i < head.fieldCount(); ++i) {
      const HttpField& f = head.field(i);
      if (f.kind == FieldKind::Connection) split(head.value(f));
    }
  }
  bool lists(std::string_view name) const {
    for (std::size_t i = 0; i < count_; ++i)
      if (equalsIgnoreCase(tokens_[i], name)) return true;
    return false;
  }
  bool empty() const { return count_ == 0; }

 private:
  static constexpr std::size_t kMaxTokens = 16;
  void split(std::string_view value) {
    while (!value.empty() && count_ < kMaxTokens) {
      std::size_t comma = value.find(',');
      std::string_view token = value.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
        token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
      if (!token.empty()) tokens_[count_++] = token;
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  std::array<std::string_view, kMaxTokens> tokens_;
  std::size_t count_ = 0;
};

// Whether a field stops at this hop. A Connection field may not strip the fields that carry
// routing or framing (Host, Content-Length): that would make the next hop read another message.
bool hopByHop(const HttpHead& head, const HttpField& f, const ConnectionTokens& tokens,
              bool keepUpgrade) {
  switch (f.kind) {
    case FieldKind::Connection:
    case FieldKind::KeepAlive:
    case FieldKind::ProxyConnection:
    case FieldKind::Te:
    case FieldKind::Trailer:
    case FieldKind::TransferEncoding:
      return true;
    case FieldKind::Upgrade:
      return !keepUpgrade;
    case FieldKind::Host:
    case FieldKind::ContentLength:
      return false;
    default:
      return !tokens.empty() && tokens.lists(head.name(f));
  }
}

void appendField(OutputChain& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

void appendForwardedFor(const HttpHead& head, const ForwardedInfo& info, OutputChain& out) {
  out.append("X-Forwarded-For: ");
  for (std::size_t i = 0; i < head.fieldCount(); ++i) {
    const HttpField& f = head.field(i);
    if (f.kind != FieldKind::XForwardedFor || f.valueLength == 0) continue;
    out.append(head.value(f));
    out.append(", ");
  }
  out.append(info.clientAddress);
  out.append("\r\n");
}

// "METHOD TARGET HTTP/1.1", an absolute-form target cut down to origin form.
void appendRequestLine(const HttpHead& request, std::string_view authority, OutputChain& out) {
  std::string_view target = request.target();
  out.append(request.method());
  out.append(" ");
  if (!authority.empty()) {
    target.remove_prefix(
        static_cast<std::size_t>(authority.data() + authority.size() - target.data()));
    if (target.empty() || target[0] != '/') out.append("/");
  }
  out.append(target);
  out.append(" HTTP/1.1\r\n");
}

}  // namespace

void writeRequestHead(const HttpHead& request, const ForwardedInfo& info, OutputChain& out) {
  std::string_view authority = targetAuthority(request.target());
  appendRequestLine(request, authority, out);
  // What the client named (X-Forwarded-Host), and what the request was routed on (Host).
  std::string_view named = authority;
  if (named.empty())
    if (const HttpField* h = request.find(FieldKind::Host)) named = request.value(*h);
  std::string_view routed = info.host.empty() ? named : info.host;
  ConnectionTokens tokens(request);
  bool forwardedFor = false, host = false;
  for (std::size_t i = 0; i < request.fieldCount(); ++i) {
    const HttpField& f = request.field(i);
    if (hopByHop(request, f, tokens, request.upgrade)) continue;
    switch (f.kind) {
      case FieldKind::Host:
        appendField(out, request.name(f), routed);
        host = true;
        break;
      case FieldKind::XForwardedFor:
        if (!forwardedFor) appendForwardedFor(request, info, out);
        forwardedFor = true;
        break;
      case FieldKind::XForwardedProto:
      case FieldKind::XForwardedHost:
        break;
      default:
        appendField(out, request.name(f), request.value(f));
    }
  }
  // RFC 9112 3.2: a request without an authority still carries an (empty) Host.
  if (!host) appendField(out, "Host", routed);
  if (!forwardedFor) appendForwardedFor(request, info, out);
  appendField(out, "X-Forwarded-Proto", info.https ? "https" : "http");
  if (request.find(FieldKind::Host) || !authority.empty())
    appendField(out, "X-Forwarded-Host", named);
  if (request.chunked) out.append("Transfer-Encoding: chunked\r\n");
  if (request.upgrade) out.append("Connection: upgrade\r\n");
  out.append("\r\n");
}

void writeResponseHead(const HttpHead& response, const ResponseFraming& framing, OutputChain& out) {
  out.append("HTTP/1.1 ");
  out.appendNumber(static_cast<std::uint64_t>(response.status()));
  out.append(" ");
  out.append(response.reason());
  out.append("\r\n");
  bool upgrade = response.status() == 101;
  ConnectionTokens tokens(response);
  for (std::size_t i = 0; i < response.fieldCount(); ++i) {
    const HttpField& f = response.field(i);
    if (!hopByHop(response, f, tokens, upgrade))
      appendField(out, response.name(f), response.value(f));
  }
  if (framing.chunked) out.append("Transfer-Encoding: chunked\r\n");
  if (upgrade) {
    out.append("Connection: upgrade\r\n");
  } else if (framing.close) {
    out.append("Connection: close\r\n");
  } else if (framing.keepAlive) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

void writeLocalResponse(int status, const ResponseFraming& framing, bool headOnly,
                        OutputChain& out) {
  std::string_view reason = reasonPhrase(status);
  bool bodyless = status < 200 || status == 204 || status == 304;
  out.append("HTTP/1.1 ");
  out.appendNumber(static_cast<std::uint64_t>(status));
  out.append(" ");
  out.append(reason);
  out.append("\r\n");
  if (!bodyless) {
    // "503 Service Unavailable\n": three digits, a space, the reason, a newline.
    out.append("Content-Type: text/plain\r\nContent-Length: ");
    out.appendNumber(reason.size() + 5);
    out.append("\r\n");
  }
  if (framing.close) {
    out.append("Connection: close\r\n");
  } else if (framing.keepAlive) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
  if (bodyless || headOnly) return;
  out.appendNumber(static_cast<std::uint64_t>(status));
  out.append(" ");
  out.append(reason);
  out.append("\n");
}

}  // namespace molt::worker
