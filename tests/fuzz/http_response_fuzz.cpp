// libFuzzer target: the HTTP/1.1 response parser (head, body framing: chunked and
// Content-Length) and the head rewriting that follows (tests/fuzz/http_fuzz.hpp).
#include "tests/fuzz/http_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return molt::worker::fuzz::fuzzHttp(data, size, true);
}
