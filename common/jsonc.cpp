#include "common/jsonc.hpp"

#include <charconv>
#include <cstddef>
#include <string>
#include <unordered_map>
#include <utility>

namespace molt::common {

const JsonMember* JsonValue::find(std::string_view key) const {
  for (const JsonMember& member : members) {
    if (member.key == key) return &member;
  }
  return nullptr;
}

namespace {

// Thrown inside the parser only; parseJsonc turns it into a JsonError.
struct SyntaxError {
  JsonPos pos;
  std::string message;
};

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isWordChar(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

std::string posText(JsonPos pos) {
  return "line " + std::to_string(pos.line) + ", column " + std::to_string(pos.column);
}

void appendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  JsonDocument run() {
    JsonDocument doc;
    try {
      if (text_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;
      skipSpace();
      if (eof()) throw SyntaxError{pos(), "empty document: expected a value"};
      JsonValue root = parseValue(0);
      skipSpace();
      if (!eof()) fail("unexpected text after the end of the document");
      doc.root = std::move(root);
    } catch (SyntaxError& e) {
      errors_.push_back(JsonError{e.pos, "", std::move(e.message)});
    }
    doc.errors = std::move(errors_);
    return doc;
  }

 private:
  // One step of the path to the value being parsed: an object key, or an array index.
  struct Segment {
    const std::string* key;
    std::size_t index;
  };

  bool eof() const { return i_ >= text_.size(); }
  char cur() const { return text_[i_]; }
  char peek(std::size_t ahead) const {
    return i_ + ahead < text_.size() ? text_[i_ + ahead] : '\0';
  }
  JsonPos pos() const { return JsonPos{line_, column_}; }

  void advance() {
    char c = text_[i_++];
    if (c == '\n') {
      ++line_;
      column_ = 1;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      ++column_;
    }
  }

  [[noreturn]] void fail(std::string message) { throw SyntaxError{pos(), std::move(message)}; }

  void skipSpace() {
    while (!eof()) {
      char c = cur();
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        advance();
      } else if (c == '/' && peek(1) == '/') {
        while (!eof() && cur() != '\n') advance();
      } else if (c == '/' && peek(1) == '*') {
        skipBlockComment();
      } else if (c == '/') {
        fail("a '/' must start a comment ('//' or '/*')");
      } else {
        return;
      }
    }
  }

  void skipBlockComment() {
    JsonPos start = pos();
    advance();
    advance();
    while (true) {
      if (eof()) throw SyntaxError{start, "unterminated /* comment"};
      if (cur() == '*' && peek(1) == '/') break;
      advance();
    }
    advance();
    advance();
  }

  std::string pathText(const std::string& lastKey) const {
    std::string out;
    for (const Segment& s : path_) {
      if (s.key) {
        if (!out.empty()) out += '.';
        out += *s.key;
      } else {
        out += '[' + std::to_string(s.index) + ']';
      }
    }
    if (!out.empty()) out += '.';
    return out + lastKey;
  }

  JsonValue parseValue(int depth) {
    skipSpace();
    if (eof()) fail("unexpected end of input, expected a value");
    if (depth >= kJsonMaxDepth)
      fail("nesting deeper than " + std::to_string(kJsonMaxDepth) + " levels");
    JsonValue v;
    v.pos = pos();
    char c = cur();
    if (c == '{') {
      parseObject(v, depth);
    } else if (c == '[') {
      parseArray(v, depth);
    } else if (c == '"') {
      v.kind = JsonValue::Kind::String;
      v.string = parseString();
    } else if (c == '-' || isDigit(c)) {
      parseNumber(v);
    } else if (isWordChar(c)) {
      parseLiteral(v);
    } else if (c == '\'') {
      fail("strings need double quotes, not single quotes");
    } else {
      fail("expected a value, found " + describe(c));
    }
    return v;
  }

  static std::string describe(char c) {
    if (c >= 0x20 && c < 0x7F) return std::string("'") + c + "'";
    if (static_cast<unsigned char>(c) >= 0x80) return "a non-ASCII character";
    return "a control character";
  }

  void parseLiteral(JsonValue& v) {
    std::size_t start = i_;
    JsonPos at = pos();
    while (!eof() && isWordChar(cur())) advance();
    std::string_view word = text_.substr(start, i_ - start);
    if (word == "true" || word == "false") {
      v.kind = JsonValue::Kind::Bool;
      v.boolean = word == "true";
    } else if (word != "null") {
      throw SyntaxError{at,
                        "unexpected '" + std::string(word) +
                            "' (strings need double quotes; the literals are true, false, null)"};
    }
  }

  void parseNumber(JsonValue& v) {
    std::size_t start = i_;
    JsonPos at = pos();
    auto bad = [&](const char* why) {
      throw SyntaxError{at, std::string("invalid number: ") + why};
    };
    if (cur() == '-') advance();
    if (eof() || !isDigit(cur())) bad("expected a digit");
    if (cur() == '0') {
      advance();
      if (!eof() && isDigit(cur())) bad("leading zeros are not allowed");
    }
    while (!eof() && isDigit(cur())) advance();
    v.integral = true;
    if (!eof() && cur() == '.') {
      v.integral = false;
      advance();
      if (eof() || !isDigit(cur())) bad("expected digits after '.'");
      while (!eof() && isDigit(cur())) advance();
    }
    if (!eof() && (cur() == 'e' || cur() == 'E')) {
      v.integral = false;
      advance();
      if (!eof() && (cur() == '+' || cur() == '-')) advance();
      if (eof() || !isDigit(cur())) bad("expected digits in the exponent");
      while (!eof() && isDigit(cur())) advance();
    }
    if (!eof() && isWordChar(cur())) {
      fail("unexpected '" + std::string(1, cur()) +
           "' after a number (durations and sizes are strings: \"5s\", \"64MB\")");
    }
    finishNumber(v, text_.substr(start, i_ - start), at);
  }

  static void finishNumber(JsonValue& v, std::string_view literal, JsonPos at) {
    v.kind = JsonValue::Kind::Number;
    const char* end = literal.data() + literal.size();
    auto [p, ec] = std::from_chars(literal.data(), end, v.number);
    if (ec != std::errc()) throw SyntaxError{at, "number out of range"};
    if (v.integral) {
      std::int64_t n = 0;
      auto [q, ec2] = std::from_chars(literal.data(), end, n);
      if (ec2 == std::errc()) v.integer = n;
    }
  }

  std::string parseString() {
    JsonPos start = pos();
    advance();
    std::string out;
    while (true) {
      if (eof()) throw SyntaxError{start, "unterminated string"};
      char c = cur();
      if (c == '"') {
        advance();
        return out;
      }
      if (c == '\\') {
        parseEscape(out);
      } else if (static_cast<unsigned char>(c) < 0x20) {
        if (c == '\n') throw SyntaxError{start, "unterminated string (a line break inside it)"};
        fail("control character in a string (write it as an escape)");
      } else {
        out.push_back(c);
        advance();
      }
    }
  }

  void parseEscape(std::string& out) {
    JsonPos at = pos();
    advance();
    if (eof()) throw SyntaxError{at, "unterminated string"};
    char c = cur();
    advance();
    // Pairs of (escape letter, character) for the single-character escapes.
    constexpr std::string_view kSimple = "\"\"\\\\//b\bf\fn\nr\rt\t";
    for (std::size_t k = 0; k < kSimple.size(); k += 2) {
      if (kSimple[k] == c) return out.push_back(kSimple[k + 1]);
    }
    if (c != 'u') throw SyntaxError{at, "invalid escape '\\" + std::string(1, c) + "'"};
    std::uint32_t cp = hex4(at);
    if (cp >= 0xDC00 && cp <= 0xDFFF) throw SyntaxError{at, "unpaired surrogate in \\u escape"};
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (eof() || cur() != '\\' || peek(1) != 'u')
        throw SyntaxError{at, "unpaired surrogate in \\u escape"};
      advance();
      advance();
      std::uint32_t low = hex4(at);
      if (low < 0xDC00 || low > 0xDFFF) throw SyntaxError{at, "unpaired surrogate in \\u escape"};
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    appendUtf8(out, cp);
  }

  std::uint32_t hex4(JsonPos at) {
    std::uint32_t cp = 0;
    for (int k = 0; k < 4; ++k) {
      char c = eof() ? '\0' : cur();
      int d = isDigit(c)               ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) throw SyntaxError{at, "bad \\u escape: expected 4 hex digits"};
      cp = cp * 16 + static_cast<std::uint32_t>(d);
      advance();
    }
    return cp;
  }

  void parseArray(JsonValue& v, int depth) {
    v.kind = JsonValue::Kind::Array;
    advance();
    skipSpace();
    if (!eof() && cur() == ']') return advance();
    while (true) {
      skipSpace();
      if (!eof() && cur() == ']' && !v.items.empty())
        fail("trailing comma before ']' (not allowed in JSON)");
      path_.push_back(Segment{nullptr, v.items.size()});
      v.items.push_back(parseValue(depth + 1));
      path_.pop_back();
      skipSpace();
      if (eof()) unclosed("an array", v.pos);
      if (cur() == ']') return advance();
      if (cur() != ',') fail("expected ',' or ']' after array element");
      advance();
    }
  }

  [[noreturn]] void unclosed(const char* what, JsonPos opened) {
    fail(std::string("unexpected end of input: ") + what + " opened at " + posText(opened) +
         " is not closed");
  }

  void parseObject(JsonValue& v, int depth) {
    v.kind = JsonValue::Kind::Object;
    advance();
    skipSpace();
    if (!eof() && cur() == '}') return advance();
    std::unordered_map<std::string, JsonPos> index;  // used once the object grows large
    while (true) {
      skipSpace();
      if (eof()) unclosed("an object", v.pos);
      if (cur() == '}' && !v.members.empty())
        fail("trailing comma before '}' (not allowed in JSON)");
      if (cur() == '\'') fail("keys need double quotes, not single quotes");
      if (cur() != '"') fail("expected a key in double quotes");
      JsonMember m;
      m.keyPos = pos();
      m.key = parseString();
      skipSpace();
      if (eof() || cur() != ':') fail("expected ':' after object key");
      advance();
      path_.push_back(Segment{&m.key, 0});
      m.value = parseValue(depth + 1);
      path_.pop_back();
      addMember(v, std::move(m), index);
      skipSpace();
      if (eof()) unclosed("an object", v.pos);
      if (cur() == '}') return advance();
      if (cur() != ',') fail("expected ',' or '}' after object member");
      advance();
    }
  }

  // Linear search while small, a hash index past that, so huge objects stay linear-time.
  void addMember(JsonValue& object, JsonMember&& m,
                 std::unordered_map<std::string, JsonPos>& index) {
    constexpr std::size_t kLinearLimit = 16;
    const JsonPos* first = nullptr;
    if (object.members.size() < kLinearLimit) {
      if (const JsonMember* found = object.find(m.key)) first = &found->keyPos;
    } else {
      if (index.empty()) {
        for (const JsonMember& old : object.members) index.emplace(old.key, old.keyPos);
      }
      auto it = index.find(m.key);
      if (it != index.end()) first = &it->second;
    }
    if (first) {
      errors_.push_back(
          JsonError{m.keyPos, pathText(m.key),
                    "duplicate key '" + m.key + "' (first at " + posText(*first) + ")"});
      return;
    }
    if (!index.empty()) index.emplace(m.key, m.keyPos);
    object.members.push_back(std::move(m));
  }

  std::string_view text_;
  std::size_t i_ = 0;
  int line_ = 1, column_ = 1;
  std::vector<JsonError> errors_;
  std::vector<Segment> path_;
};

}  // namespace

JsonDocument parseJsonc(std::string_view text) {
  return Parser(text).run();
}

}  // namespace molt::common
