#include "common/units.hpp"

#include <catch2/catch.hpp>

using molt::common::formatDuration;
using molt::common::formatSize;
using molt::common::Millis;
using molt::common::parseDuration;
using molt::common::parseSize;
using namespace std::chrono_literals;

namespace {

std::string durationError(std::string_view text) {
  std::string error;
  auto d = parseDuration(text, error);
  REQUIRE_FALSE(d);
  return error;
}

std::string sizeError(std::string_view text) {
  std::string error;
  auto s = parseSize(text, error);
  REQUIRE_FALSE(s);
  return error;
}

}  // namespace

TEST_CASE("durations read every unit and combinations largest first", "[units]") {
  std::string error;
  CHECK(parseDuration("250ms", error) == Millis(250));
  CHECK(parseDuration("5s", error) == 5s);
  CHECK(parseDuration("30m", error) == 30min);
  CHECK(parseDuration("12h", error) == 12h);
  CHECK(parseDuration("1h30m", error) == 90min);
  CHECK(parseDuration("1m30s500ms", error) == Millis(90'500));
  CHECK(parseDuration("0s", error) == Millis(0));
}

TEST_CASE("a bare number is not a duration", "[units]") {
  CHECK(durationError("5") == "missing unit (ms, s, m, h)");
  CHECK(durationError("1h30") == "missing unit (ms, s, m, h)");
}

TEST_CASE("malformed durations say what is wrong", "[units]") {
  CHECK(durationError("") == "empty duration");
  CHECK(durationError("5x") == "unknown unit 'x' (ms, s, m, h)");
  CHECK(durationError("5sec") == "unknown unit 'sec' (ms, s, m, h)");
  CHECK(durationError("-5s") == "must not be negative");
  CHECK(durationError("1.5s") == "fractions are not allowed; use a smaller unit (\"1500ms\")");
  CHECK(durationError("30m1h") == "units must go from largest to smallest, each once (\"1h30m\")");
  CHECK(durationError("1s1s") == "units must go from largest to smallest, each once (\"1h30m\")");
  CHECK(durationError("5 s") == "unexpected ' ' after a number");
  CHECK(durationError("s") == "expected a number, found 's'");
}

TEST_CASE("a duration past 64-bit milliseconds is an overflow error", "[units]") {
  CHECK(durationError("99999999999999999999ms") == "duration too large");
  CHECK(durationError("9223372036854776h") == "duration too large");
}

TEST_CASE("sizes are powers of 1024 with a required unit", "[units]") {
  std::string error;
  CHECK(parseSize("100B", error) == 100u);
  CHECK(parseSize("512KB", error) == 512u * 1024);
  CHECK(parseSize("64MB", error) == 64u << 20);
  CHECK(parseSize("1GB", error) == 1u << 30);
  CHECK(parseSize("0B", error) == 0u);
  CHECK(sizeError("64") == "missing unit (B, KB, MB, GB)");
  CHECK(sizeError("64mb") == "unknown unit 'mb' (B, KB, MB, GB)");
  CHECK(sizeError("1.5GB") == "fractions are not allowed; use a smaller unit (\"1536KB\")");
  CHECK(sizeError("") == "empty size");
}

TEST_CASE("a size past 2^64 bytes is an overflow error", "[units]") {
  CHECK(sizeError("17179869184GB") == "size too large");
  CHECK(sizeError("99999999999999999999B") == "size too large");
  std::string error;
  CHECK(parseSize("17179869183GB", error) == 17179869183ull << 30);
}

TEST_CASE("formatted durations and sizes read back to the same value", "[units]") {
  CHECK(formatDuration(Millis(0)) == "0s");
  CHECK(formatDuration(90min) == "1h30m");
  CHECK(formatDuration(Millis(1500)) == "1s500ms");
  CHECK(formatSize(64u << 20) == "64MB");
  CHECK(formatSize(1536u * 1024) == "1536KB");
  CHECK(formatSize(100) == "100B");
  CHECK(formatSize(0) == "0B");
  for (Millis d : {Millis(1), Millis(61'001), Millis(86'400'000)}) {
    std::string error;
    CHECK(parseDuration(formatDuration(d), error) == d);
  }
}
