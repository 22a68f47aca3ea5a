// HttpParser's whole-head path (worker/http/whole_head.cpp) against llhttp's. A head fed whole is
// parsed without llhttp when it can be; the same bytes fed one at a time always go through llhttp.
// Both must give the same outcome, whatever byte stands in whatever part of the head: the path
// exists for speed and must never accept, or read, a head differently.
#include <catch2/catch.hpp>
#include <string>

#include "worker/http/parser.hpp"

using molt::worker::HttpHead;
using molt::worker::HttpParser;
using molt::worker::ParseResult;
using molt::worker::ParseStatus;

namespace {

std::string describe(const HttpHead& h) {
  std::string out = std::string(h.method()) + "|" + std::string(h.target()) + "|" +
                    std::to_string(h.status()) + "|" + std::string(h.reason()) + "|1." +
                    std::to_string(h.versionMinor());
  for (std::size_t i = 0; i < h.fieldCount(); ++i) {
    const auto& f = h.field(i);
    out += "|" + std::string(h.name(f)) + "=" + std::string(h.value(f)) + "#" +
           std::to_string(static_cast<int>(f.kind));
  }
  out += "|chunked=" + std::to_string(h.chunked) + " length=" + std::to_string(h.hasLength) + ":" +
         std::to_string(h.length) + " keepAlive=" + std::to_string(h.keepAlive) +
         " upgrade=" + std::to_string(h.upgrade) + " eof=" + std::to_string(h.bodyUntilEof);
  return out;
}

struct Outcome {
  std::string text;    // everything a caller sees, in order
  bool whole = false;  // the head took the whole-head path
};

// Feeds `input` in pieces of `step` bytes until its first message ends or fails.
Outcome run(HttpParser::Kind kind, const std::string& input, std::size_t step, bool noBody) {
  HttpParser parser(kind);
  parser.setNoBody(noBody);
  Outcome out;
  std::size_t at = 0;
  for (;;) {
    std::size_t n = std::min(step, input.size() - at);
    ParseResult r = parser.feed(input.data() + at, n);
    if (r.status == ParseStatus::Error) {
      out.text += "error " + std::to_string(parser.error().status);
      return out;
    }
    at += r.status == ParseStatus::NeedMore ? n : r.consumed;
    if (r.status == ParseStatus::HeadComplete) {
      out.text += "head at " + std::to_string(at) + ": " + describe(parser.head()) + "\n";
      out.whole = parser.wholeHead();
    }
    if (r.status == ParseStatus::MessageComplete) {
      out.text += "complete at " + std::to_string(at);
      return out;
    }
    if (r.status == ParseStatus::NeedMore && at == input.size()) {
      out.text += "need more at " + std::to_string(at);
      return out;
    }
  }
}

struct Sample {
  HttpParser::Kind kind;
  std::string message;
  bool noBody = false;  // a response to HEAD
};

const Sample kSamples[] = {
    {HttpParser::Kind::Request,
     "GET /a/b?c=d&e=%20 HTTP/1.1\r\nHost: example.com:8080\r\nX-A:  v w \r\n\r\n"},
    {HttpParser::Kind::Request,
     "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabcGET"},
    {HttpParser::Kind::Request, "DELETE /x HTTP/1.0\r\nConnection: close\r\nX-E:\r\n\r\n"},
    {HttpParser::Kind::Response,
     "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Origin: o\r\n\r\nbodyHTTP"},
    {HttpParser::Kind::Response, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody", true},
    {HttpParser::Kind::Response,
     "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"},
    {HttpParser::Kind::Response, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"},
};

// Bytes inserted at every position: those that split a head's parts, and those that sit at the
// edges of the byte sets whole_head.cpp accepts.
const std::string kInserted = std::string("\0\t\n\r \"#%,/:;?@[\\]{|}\x7f\x80\xff", 24) + "0aZ";

}  // namespace

TEST_CASE("a head parsed whole reads as llhttp reads it, whatever byte stands where",
          "[http][parser][whole_head]") {
  std::size_t wholeHeads = 0, cases = 0;
  for (const Sample& s : kSamples) {
    const std::size_t headEnd = s.message.find("\r\n\r\n") + 4;
    {
      INFO(s.message);
      Outcome whole = run(s.kind, s.message, SIZE_MAX, s.noBody);
      REQUIRE(whole.whole);  // each sample as it stands takes the whole-head path
      REQUIRE(whole.text == run(s.kind, s.message, 1, s.noBody).text);
    }
    for (std::size_t at = 0; at < headEnd; ++at) {
      for (unsigned b = 0; b < 256; ++b) {
        std::string replaced = s.message;
        replaced[at] = static_cast<char>(b);
        std::string inserted = s.message;
        if (kInserted.find(static_cast<char>(b)) != std::string::npos)
          inserted.insert(at, 1, static_cast<char>(b));
        for (const std::string* m : {&replaced, &inserted}) {
          Outcome whole = run(s.kind, *m, SIZE_MAX, s.noBody);
          Outcome pieces = run(s.kind, *m, 1, s.noBody);
          ++cases;
          wholeHeads += whole.whole;
          if (whole.text != pieces.text) {
            INFO("input: " << *m);
            REQUIRE(whole.text == pieces.text);
          }
        }
      }
    }
  }
  // Most variants are refused or left to llhttp; enough must take the path for the comparison to
  // mean something.
  INFO(wholeHeads << " of " << cases << " heads parsed whole");
  REQUIRE(wholeHeads > cases / 10);
}

TEST_CASE("a head cut short, a chunked body and an upgrade are left to llhttp",
          "[http][parser][whole_head]") {
  auto whole = [](HttpParser::Kind kind, const std::string& m) {
    return run(kind, m, SIZE_MAX, false).whole;
  };
  const auto request = HttpParser::Kind::Request;
  REQUIRE(whole(request, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  REQUIRE_FALSE(whole(request, "GET / HTTP/1.1\r\nHost: a\r\n"));
  REQUIRE_FALSE(
      whole(request, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
  REQUIRE_FALSE(
      whole(request, "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n"));
  REQUIRE_FALSE(whole(HttpParser::Kind::Response, "HTTP/1.1 200 OK\r\n\r\nuntil the end"));
  REQUIRE_FALSE(whole(HttpParser::Kind::Response, "HTTP/1.1 100 Continue\r\n\r\n"));
}

TEST_CASE("a body after a whole head is counted in any pieces and goes to the body sink",
          "[http][parser][whole_head]") {
  struct Sink : molt::worker::BodySink {
    std::string got;
    void onBodyData(const char* data, std::size_t length) noexcept override {
      got.append(data, length);
    }
  } sink;
  HttpParser parser(HttpParser::Kind::Response);
  parser.setBodySink(&sink);
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
  REQUIRE(parser.feed(head.data(), head.size()).status == ParseStatus::HeadComplete);
  REQUIRE(parser.wholeHead());
  REQUIRE(parser.feed("0123", 4).status == ParseStatus::NeedMore);
  ParseResult r = parser.feed("456789next", 10);
  REQUIRE(r.status == ParseStatus::MessageComplete);
  REQUIRE(r.consumed == 6);
  REQUIRE(sink.got == "0123456789");
  // Truncated: the connection ends before the body does.
  parser.reset();
  REQUIRE(parser.feed(head.data(), head.size()).status == ParseStatus::HeadComplete);
  REQUIRE(parser.feed("01", 2).status == ParseStatus::NeedMore);
  REQUIRE(parser.finish().status == ParseStatus::Error);
  REQUIRE(parser.error().status == 502);
}
