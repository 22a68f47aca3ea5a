// The access log's two formats (issue 4).
#include "worker/http/access_log.hpp"

#include <catch2/catch.hpp>

#include <cstdint>

using molt::worker::AccessRecord;

namespace {

AccessRecord sample() {
  AccessRecord r;
  r.frontend = "www";
  r.backend = "bk_1";
  r.server = "s1";
  r.client = "192.0.2.1:40000";
  r.method = "GET";
  r.target = "/a\"b";
  r.status = 200;
  r.bytesIn = 78;
  r.bytesOut = 1180;
  r.headUs = 41;
  r.connectUs = 1200;
  r.responseUs = 3310;
  r.totalUs = 3402;
  r.reused = true;
  return r;
}

}  // namespace

TEST_CASE("the text access line names every step in milliseconds", "[http][log]") {
  REQUIRE(molt::worker::formatAccessText(sample()) ==
          "access fe=www be=bk_1 srv=s1 client=192.0.2.1:40000 \"GET /a\\\"b HTTP/1.1\" 200 "
          "in=78 out=1180 head=0.041ms connect=1.200ms(pool) response=3.310ms total=3.402ms");
  AccessRecord local;
  local.frontend = "www";
  local.client = "192.0.2.1:1";
  local.status = 400;
  local.termination = "bare LF";
  REQUIRE(molt::worker::formatAccessText(local) ==
          "access fe=www be=- srv=- client=192.0.2.1:1 \"- - HTTP/1.1\" 400 in=0 out=0 head=- "
          "connect=- response=- total=- term=\"bare LF\"");
}

TEST_CASE("the JSON access line is one object with the same facts", "[http][log]") {
  std::string line = molt::worker::formatAccessJson(sample());
  REQUIRE(line.front() == '{');
  REQUIRE(line.back() == '}');
  REQUIRE(line.find(R"("type":"access","frontend":"www","backend":"bk_1","server":"s1",)"
                    R"("client":"192.0.2.1:40000","method":"GET","target":"/a\"b",)"
                    R"("version":"HTTP/1.1","status":200,"bytes_in":78,"bytes_out":1180,)"
                    R"("head_ms":0.041,"connect_ms":1.200,"response_ms":3.310,"total_ms":3.402,)"
                    R"("reused":true,"termination":"","tls":"","resumed":false,"generation":0})") !=
          std::string::npos);
  AccessRecord none;
  REQUIRE(molt::worker::formatAccessJson(none).find(R"("head_ms":null)") != std::string::npos);
}

TEST_CASE("both formats say the TLS version, a resumed session and the generation", "[http][log]") {
  AccessRecord r = sample();
  r.tlsVersion = "TLSv1.3";
  r.resumed = true;
  r.generation = 7;
  REQUIRE(molt::worker::formatAccessText(r).ends_with(" total=3.402ms tls=TLSv1.3(resumed)"));
  r.resumed = false;
  r.termination = "client timeout";
  REQUIRE(molt::worker::formatAccessText(r).ends_with(
      " total=3.402ms tls=TLSv1.3 term=\"client timeout\""));
  std::string json = molt::worker::formatAccessJson(r);
  REQUIRE(json.ends_with(R"("tls":"TLSv1.3","resumed":false,"generation":7})"));
}

// Lines are written into room sized beforehand: the longest numbers and strings that need every
// escape must fit exactly, in both formats, and an appended line must leave what was before it.
TEST_CASE("a line of the longest numbers and strings needing escapes is whole", "[http][log]") {
  std::string control(300, '\x01');  // each byte becomes \u0001: six bytes
  std::string quotes(300, '"');
  AccessRecord r;
  r.frontend = r.backend = r.server = r.client = control;
  r.method = quotes;
  r.target = control;
  r.termination = r.tlsVersion = control;
  r.versionMinor = ~0U;
  r.status = -1;
  r.bytesIn = r.bytesOut = ~0ULL;
  r.headUs = r.connectUs = r.responseUs = r.totalUs = INT64_MAX;
  r.reused = r.resumed = true;
  r.generation = ~0U;

  std::string text = "before\n";
  molt::worker::appendAccessText(r, text);
  REQUIRE(text.starts_with("before\naccess fe=\x01"));
  std::string escapedTarget;
  for (int i = 0; i < 300; ++i) escapedTarget += "\\u0001";
  REQUIRE(text.find(" " + escapedTarget + " HTTP/1.4294967295\" 18446744073709551615 in=") !=
          std::string::npos);
  REQUIRE(text.ends_with(" total=9223372036854775.807ms tls=" + control + "(resumed) term=\"" +
                         control + "\""));

  std::string json = molt::worker::formatAccessJson(r);
  std::string escapedQuotes;
  for (int i = 0; i < 300; ++i) escapedQuotes += "\\\"";
  REQUIRE(json.find("\"method\":\"" + escapedQuotes + "\",\"target\":\"" + escapedTarget + "\"") !=
          std::string::npos);
  REQUIRE(json.find("\"total_ms\":9223372036854775.807,\"reused\":true") != std::string::npos);
  REQUIRE(json.ends_with("\"resumed\":true,\"generation\":4294967295}"));
}

TEST_CASE("a record of empty fields writes a whole line", "[http][log]") {
  AccessRecord empty;
  CHECK(molt::worker::formatAccessText(empty) ==
        "access fe= be=- srv=- client= \"- - HTTP/1.1\" 0 in=0 out=0 head=- connect=- response=- "
        "total=-");
  CHECK(molt::worker::formatAccessJson(empty).ends_with(R"("generation":0})"));
}
