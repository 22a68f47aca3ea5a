// How heads change on their way through the proxy: hop-by-hop fields removed, X-Forwarded-*
// added, framing restated for the next hop; and the small responses the proxy makes itself.
#pragma once

#include "common/http_status.hpp"

#include <string_view>

#include "worker/http/head.hpp"
#include "worker/net/output_chain.hpp"

namespace molt::worker {

// What the proxy tells the server about the client.
struct ForwardedInfo {
  std::string_view clientAddress;  // the client's IP, no port: X-Forwarded-For
  bool https = false;              // X-Forwarded-Proto
  // The host the request was routed on (Router::normalizeAuthority), sent as Host; X-Forwarded-Host
  // keeps what the client named. Empty: the request's own (its absolute-form authority, else its
  // Host).
  std::string_view host;
};

// Writes `request` as it goes to a server: HTTP/1.1, origin-form target (an absolute-form
// target becomes its path and its authority the Host), hop-by-hop fields removed, the others in
// their order and case, X-Forwarded-For appended to (one field joining any the client sent),
// X-Forwarded-Proto and X-Forwarded-Host replaced, chunked framing restated, and
// "Connection: upgrade" with the Upgrade field kept when the request asks for an upgrade.
void writeRequestHead(const HttpHead& request, const ForwardedInfo& info, OutputChain& out);

// How the proxy frames a response to the client.
struct ResponseFraming {
  bool chunked = false;    // Transfer-Encoding: chunked (the body is relayed chunked)
  bool close = false;      // Connection: close (the connection ends after this response)
  bool keepAlive = false;  // Connection: keep-alive (an HTTP/1.0 client keeps the connection)
};

// Writes `response` (a server's) as it goes to the client: HTTP/1.1 status line with the
// server's reason, hop-by-hop fields removed (Upgrade kept for a 101), framing per `framing`.
void writeResponseHead(const HttpHead& response, const ResponseFraming& framing, OutputChain& out);

// Writes a response of the proxy's own: `status` with a one-line text body ("503 Service
// Unavailable\n"), omitted for HEAD (`headOnly`) and for statuses that never have one.
void writeLocalResponse(int status, const ResponseFraming& framing, bool headOnly,
                        OutputChain& out);

using common::reasonPhrase;

}  // namespace molt::worker
