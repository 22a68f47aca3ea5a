#include "common/jsonc.hpp"

#include <catch2/catch.hpp>

using molt::common::JsonDocument;
using molt::common::JsonError;
using molt::common::JsonValue;
using molt::common::kJsonMaxDepth;
using molt::common::parseJsonc;

namespace {

JsonValue parseOk(std::string_view text) {
  JsonDocument doc = parseJsonc(text);
  for (const JsonError& e : doc.errors) INFO(e.message);
  REQUIRE(doc.errors.empty());
  REQUIRE(doc.root);
  return *doc.root;
}

// The single syntax error of `text`, as "LINE:COL: message".
std::string syntaxError(std::string_view text) {
  JsonDocument doc = parseJsonc(text);
  REQUIRE_FALSE(doc.root);
  REQUIRE(doc.errors.size() == 1);
  const JsonError& e = doc.errors[0];
  CHECK(e.path.empty());
  return std::to_string(e.pos.line) + ":" + std::to_string(e.pos.column) + ": " + e.message;
}

}  // namespace

TEST_CASE("values and keys carry their line and column", "[jsonc]") {
  JsonValue v = parseOk("{\n  \"a\": [1, true],\n    \"bc\" : {\"d\": null}\n}");
  REQUIRE(v.isObject());
  CHECK(v.pos.line == 1);
  CHECK(v.pos.column == 1);
  REQUIRE(v.members.size() == 2);
  CHECK(v.members[0].keyPos.line == 2);
  CHECK(v.members[0].keyPos.column == 3);
  const JsonValue& a = v.members[0].value;
  CHECK(a.pos.column == 8);
  REQUIRE(a.items.size() == 2);
  CHECK(a.items[1].pos.column == 12);
  CHECK(a.items[1].boolean);
  CHECK(v.members[1].keyPos.line == 3);
  CHECK(v.members[1].keyPos.column == 5);
  const JsonValue& d = v.find("bc")->value.find("d")->value;
  CHECK(d.isNull());
  CHECK(d.pos.line == 3);
  CHECK(d.pos.column == 18);
}

TEST_CASE("both comment styles are skipped wherever whitespace may be", "[jsonc]") {
  JsonValue v = parseOk(
      "// leading\n{ /* a\n block */ \"a\" /* x */ : // after colon\n 1 /**/, \"b\": 2 } // end");
  CHECK(v.find("a")->value.integer == 1);
  CHECK(v.find("b")->value.integer == 2);
  CHECK(v.find("a")->value.pos.line == 4);
  CHECK(v.find("a")->value.pos.column == 2);
}

TEST_CASE("strings decode every escape, including surrogate pairs", "[jsonc]") {
  JsonValue v = parseOk(R"(["a\"b\\c\/d\b\f\n\r\t", "\u00e9\u20AC", "\ud83d\ude00"])");
  CHECK(v.items[0].string == "a\"b\\c/d\b\f\n\r\t");
  CHECK(v.items[1].string == "\xC3\xA9\xE2\x82\xAC");
  CHECK(v.items[2].string == "\xF0\x9F\x98\x80");
}

TEST_CASE("numbers tell integers from other numbers", "[jsonc]") {
  JsonValue v = parseOk("[0, -7, 1.5, 1e3, 9223372036854775807, 9223372036854775808]");
  CHECK(v.items[0].integer == 0);
  CHECK(v.items[1].integer == -7);
  CHECK_FALSE(v.items[2].integral);
  CHECK(v.items[2].number == 1.5);
  CHECK_FALSE(v.items[3].integral);
  CHECK(v.items[3].number == 1000);
  CHECK(v.items[4].integer == INT64_MAX);
  CHECK(v.items[5].integral);
  CHECK_FALSE(v.items[5].integer);
}

TEST_CASE("columns count characters, not bytes", "[jsonc]") {
  JsonValue v = parseOk("{\"\xC3\xA9t\xC3\xA9\": 1}");
  CHECK(v.members[0].value.pos.column == 9);
}

TEST_CASE("a byte order mark is skipped", "[jsonc]") {
  JsonValue v = parseOk("\xEF\xBB\xBF{\"a\": 1}");
  CHECK(v.pos.column == 1);
}

TEST_CASE("syntax errors point at the offending character", "[jsonc]") {
  CHECK(syntaxError("{\"a\": 1 \"b\": 2}") == "1:9: expected ',' or '}' after object member");
  CHECK(syntaxError("[1 2]") == "1:4: expected ',' or ']' after array element");
  CHECK(syntaxError("{\"a\" 1}") == "1:6: expected ':' after object key");
  CHECK(syntaxError("{\n  \"a\": 1,\n}") == "3:1: trailing comma before '}' (not allowed in JSON)");
  CHECK(syntaxError("[1,]") == "1:4: trailing comma before ']' (not allowed in JSON)");
  CHECK(syntaxError("{'a': 1}") == "1:2: keys need double quotes, not single quotes");
  CHECK(syntaxError("{\"a\": 'x'}") == "1:7: strings need double quotes, not single quotes");
  CHECK(syntaxError("{a: 1}") == "1:2: expected a key in double quotes");
  CHECK(syntaxError("{\"a\": }") == "1:7: expected a value, found '}'");
  CHECK(syntaxError("{\"a\": yes}") ==
        "1:7: unexpected 'yes' (strings need double quotes; the literals are true, false, null)");
  CHECK(syntaxError("{\"a\": 5s}") ==
        "1:8: unexpected 's' after a number (durations and sizes are strings: \"5s\", \"64MB\")");
  CHECK(syntaxError("{} {}") == "1:4: unexpected text after the end of the document");
  CHECK(syntaxError("  // nothing\n") == "2:1: empty document: expected a value");
  CHECK(syntaxError("{\"a\": 1 / 2}") == "1:9: a '/' must start a comment ('//' or '/*')");
}

TEST_CASE("unterminated constructs point at where they began", "[jsonc]") {
  CHECK(syntaxError("{\"a\": \"abc") == "1:7: unterminated string");
  CHECK(syntaxError("{\"a\": \"abc\n\"}") == "1:7: unterminated string (a line break inside it)");
  CHECK(syntaxError("{\n/* open") == "2:1: unterminated /* comment");
  CHECK(syntaxError("\n  {\"a\": [1,\n2") ==
        "3:2: unexpected end of input: an array opened at line 2, column 9 is not closed");
  CHECK(syntaxError("  {\"a\": 1") ==
        "1:10: unexpected end of input: an object opened at line 1, column 3 is not closed");
}

TEST_CASE("malformed numbers and escapes are syntax errors", "[jsonc]") {
  CHECK(syntaxError("[01]") == "1:2: invalid number: leading zeros are not allowed");
  CHECK(syntaxError("[1.]") == "1:2: invalid number: expected digits after '.'");
  CHECK(syntaxError("[-]") == "1:2: invalid number: expected a digit");
  CHECK(syntaxError("[1e]") == "1:2: invalid number: expected digits in the exponent");
  CHECK(syntaxError("[1e999]") == "1:2: number out of range");
  CHECK(syntaxError(R"(["\q"])") == "1:3: invalid escape '\\q'");
  CHECK(syntaxError(R"(["\u12"])") == "1:3: bad \\u escape: expected 4 hex digits");
  CHECK(syntaxError(R"(["\ud83d"])") == "1:3: unpaired surrogate in \\u escape");
  CHECK(syntaxError("[\"a\tb\"]") == "1:4: control character in a string (write it as an escape)");
}

TEST_CASE("nesting deeper than the limit is refused, not a stack overflow", "[jsonc]") {
  std::string deep(kJsonMaxDepth + 1, '[');
  deep += std::string(kJsonMaxDepth + 1, ']');
  CHECK(syntaxError(deep) == "1:" + std::to_string(kJsonMaxDepth + 1) + ": nesting deeper than " +
                                 std::to_string(kJsonMaxDepth) + " levels");
  std::string ok(kJsonMaxDepth, '[');
  ok += std::string(kJsonMaxDepth, ']');
  parseOk(ok);
}

TEST_CASE("a duplicate key is reported at the second key with its path", "[jsonc]") {
  JsonDocument doc = parseJsonc("{\"f\": [{\"name\": 1,\n  \"name\": 2}]}");
  REQUIRE(doc.root);
  REQUIRE(doc.errors.size() == 1);
  CHECK(doc.errors[0].pos.line == 2);
  CHECK(doc.errors[0].pos.column == 3);
  CHECK(doc.errors[0].path == "f[0].name");
  CHECK(doc.errors[0].message == "duplicate key 'name' (first at line 1, column 9)");
  CHECK(doc.root->items.empty());
  CHECK(doc.root->find("f")->value.items[0].find("name")->value.integer == 1);
}

TEST_CASE("duplicate keys are found in large objects too", "[jsonc]") {
  std::string text = "{";
  for (int i = 0; i < 100; ++i) text += "\"k" + std::to_string(i) + "\": 0, ";
  text += "\"k3\": 1, \"k99\": 1}";
  JsonDocument doc = parseJsonc(text);
  REQUIRE(doc.root);
  REQUIRE(doc.errors.size() == 2);
  CHECK(doc.errors[0].path == "k3");
  CHECK(doc.errors[1].path == "k99");
  CHECK(doc.root->members.size() == 100);
}
