// JSON with comments: the parser behind molt's config file.
//
// Strict JSON (RFC 8259: double-quoted strings, no trailing commas, no NaN) plus `//` line comments
// and `/* */` block comments wherever whitespace may appear. Every value and every object key
// carries its 1-based line and column so that config errors can point at the exact spot.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace molt::common {

// A position in the text: 1-based line, and 1-based column counted in characters (UTF-8
// continuation bytes do not advance it). {0, 0} means "no position".
struct JsonPos {
  int line = 0, column = 0;
};

struct JsonMember;

// One parsed value. A plain tree: objects keep their members in file order.
struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Kind kind = Kind::Null;
  JsonPos pos;
  bool boolean = false;
  // Number: `integral` when written without fraction or exponent; `integer` is then set unless
  // the value does not fit in 64 bits. `number` always holds the (possibly rounded) value.
  bool integral = false;
  std::optional<std::int64_t> integer;
  double number = 0;
  std::string string;               // String: the decoded text (UTF-8)
  std::vector<JsonValue> items;     // Array
  std::vector<JsonMember> members;  // Object, without duplicate keys

  bool isNull() const { return kind == Kind::Null; }
  bool isBool() const { return kind == Kind::Bool; }
  bool isNumber() const { return kind == Kind::Number; }
  bool isString() const { return kind == Kind::String; }
  bool isArray() const { return kind == Kind::Array; }
  bool isObject() const { return kind == Kind::Object; }
  // The member named `key` of an object, or nullptr (also for a non-object).
  const JsonMember* find(std::string_view key) const;
};

struct JsonMember {
  std::string key;
  JsonPos keyPos;
  JsonValue value;
};

// A problem in the text. `path` is empty for syntax errors; a duplicate key carries the path of
// the second occurrence ("frontends[0].name").
struct JsonError {
  JsonPos pos;
  std::string path;
  std::string message;
};

// The outcome of parsing: `root` is absent after a syntax error (parsing stops at the first one);
// duplicate keys are reported in `errors` without stopping, the later member being dropped.
struct JsonDocument {
  std::optional<JsonValue> root;
  std::vector<JsonError> errors;
};

// Parses `text` (one value, optionally preceded by a UTF-8 byte order mark). Never throws except
// std::bad_alloc. Nesting deeper than kJsonMaxDepth is a syntax error.
JsonDocument parseJsonc(std::string_view text);

inline constexpr int kJsonMaxDepth = 256;

}  // namespace molt::common
