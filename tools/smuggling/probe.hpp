// Sends one smuggling case to a proxy in front of molt-origin, and reads what happened on both
// sides: the proxy's answer, and how many requests the origin parsed.
#pragma once

#include <cstdint>
#include <string>

#include "tools/smuggling/cases.hpp"

namespace molt::smuggling {

struct Outcome {
  int status = 0;         // the proxy's first answer (0: none; it closed or timed out)
  bool closed = false;    // the proxy closed the connection after it
  unsigned requests = 0;  // requests the origin parsed for this case
  // "refused" (no request reached the origin), "forwarded" (at most as many as the client
  // sent), "cut off" (the head reached the origin, then the proxy refused the body), or
  // "desync" (more than the client sent: the origin read a request the proxy did not).
  std::string verdict;
};

// The origin's requests_total (its /stats, asked directly; the asking request counts).
unsigned originRequests(std::uint16_t originPort);

// Runs `c` against the proxy at 127.0.0.1:proxyPort (the origin answering at originPort).
Outcome probe(std::uint16_t proxyPort, std::uint16_t originPort, const Case& c);

}  // namespace molt::smuggling
