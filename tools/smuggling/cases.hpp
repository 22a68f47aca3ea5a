// The request-smuggling corpus: byte sequences a client sends, each with what a proxy that does
// not desynchronise must do with it. Shared by the parser's unit tests, the end-to-end tests and
// bench/smuggling (which runs it through HAProxy and nginx too).
#pragma once

#include <string>
#include <vector>

namespace molt::smuggling {

struct Case {
  std::string name;
  std::string category;  // "CL.TE", "TE.TE", "content-length", "chunks", "bytes", "target",
                         // "version", "expect", "pipelining", "upgrade", "fields"
  std::string request;   // exactly what the client sends
  int status;            // molt's answer to the first request (400: refused, 200: forwarded; 0:
                         // none in HTTP/1.1: the connection speaks HTTP/2, no parser sees it)
  unsigned reached;   // requests molt lets the server parse: 0 when it refuses at the head; 1 when
                      // the head went on and the body was then refused (the server connection is
                      // closed, never reused); the requests the client sent otherwise
  unsigned sent = 1;  // requests the client really sent: a server that parses more is desynced
};

std::vector<Case> cases();

}  // namespace molt::smuggling
