#include "common/units.hpp"

#include <cstddef>
#include <limits>
#include <utility>

namespace molt::common {

namespace {

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

// Largest first: a duration's groups must follow this order.
constexpr Unit kDurationUnits[] = {{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};
constexpr Unit kSizeUnits[] = {
    {"B", 1}, {"KB", 1ull << 10}, {"MB", 1ull << 20}, {"GB", 1ull << 30}};

// Reads the digits at text[i...]; false on overflow of `limit`.
bool readNumber(std::string_view text, std::size_t& i, std::uint64_t limit, std::uint64_t& out) {
  out = 0;
  for (; i < text.size() && isDigit(text[i]); ++i) {
    std::uint64_t digit = static_cast<std::uint64_t>(text[i] - '0');
    if (out > (limit - digit) / 10) return false;
    out = out * 10 + digit;
  }
  return true;
}

std::string_view readWord(std::string_view text, std::size_t& i) {
  std::size_t start = i;
  while (i < text.size() && isLetter(text[i])) ++i;
  return text.substr(start, i - start);
}

std::nullopt_t fail(std::string& error, std::string message) {
  error = std::move(message);
  return std::nullopt;
}

// Why text[i] cannot start a number.
std::string notANumber(std::string_view text, std::size_t i) {
  if (text[i] == '-') return "must not be negative";
  if (text[i] == ' ') return "unexpected space";
  return "expected a number, found '" + std::string(1, text[i]) + "'";
}

}  // namespace

std::optional<Millis> parseDuration(std::string_view text, std::string& error) {
  constexpr std::uint64_t kMax = std::numeric_limits<Millis::rep>::max();
  if (text.empty()) return fail(error, "empty duration");
  std::uint64_t total = 0;
  std::size_t next = 0;  // index in kDurationUnits the next group may use
  for (std::size_t i = 0; i < text.size();) {
    if (!isDigit(text[i])) return fail(error, notANumber(text, i));
    std::uint64_t n = 0;
    if (!readNumber(text, i, kMax, n)) return fail(error, "duration too large");
    if (i < text.size() && text[i] == '.') {
      return fail(error, "fractions are not allowed; use a smaller unit (\"1500ms\")");
    }
    std::string_view unit = readWord(text, i);
    if (unit.empty() && i == text.size()) return fail(error, "missing unit (ms, s, m, h)");
    if (unit.empty())
      return fail(error, "unexpected '" + std::string(1, text[i]) + "' after a number");
    std::size_t u = 0;
    while (u < std::size(kDurationUnits) && kDurationUnits[u].name != unit) ++u;
    if (u == std::size(kDurationUnits)) {
      return fail(error, "unknown unit '" + std::string(unit) + "' (ms, s, m, h)");
    }
    if (u < next) {
      return fail(error, "units must go from largest to smallest, each once (\"1h30m\")");
    }
    next = u + 1;
    std::uint64_t factor = kDurationUnits[u].factor;
    if (n > (kMax - total) / factor) return fail(error, "duration too large");
    total += n * factor;
  }
  return Millis(static_cast<Millis::rep>(total));
}

std::optional<std::uint64_t> parseSize(std::string_view text, std::string& error) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  if (text.empty()) return fail(error, "empty size");
  std::size_t i = 0;
  if (!isDigit(text[0])) return fail(error, notANumber(text, 0));
  std::uint64_t n = 0;
  if (!readNumber(text, i, kMax, n)) return fail(error, "size too large");
  if (i < text.size() && text[i] == '.') {
    return fail(error, "fractions are not allowed; use a smaller unit (\"1536KB\")");
  }
  std::string_view unit = text.substr(i);
  if (unit.empty()) return fail(error, "missing unit (B, KB, MB, GB)");
  for (const Unit& candidate : kSizeUnits) {
    if (candidate.name != unit) continue;
    if (n > kMax / candidate.factor) return fail(error, "size too large");
    return n * candidate.factor;
  }
  return fail(error, "unknown unit '" + std::string(unit) + "' (B, KB, MB, GB)");
}

std::string formatDuration(Millis d) {
  std::uint64_t left = static_cast<std::uint64_t>(d.count());
  if (left == 0) return "0s";
  std::string out;
  for (const Unit& unit : kDurationUnits) {
    if (left >= unit.factor) {
      out += std::to_string(left / unit.factor);
      out += unit.name;
      left %= unit.factor;
    }
  }
  return out;
}

std::string formatSize(std::uint64_t bytes) {
  for (std::size_t u = std::size(kSizeUnits); u-- > 1;) {
    std::uint64_t factor = kSizeUnits[u].factor;
    if (bytes != 0 && bytes % factor == 0) {
      return std::to_string(bytes / factor) + std::string(kSizeUnits[u].name);
    }
  }
  return std::to_string(bytes) + "B";
}

}  // namespace molt::common
