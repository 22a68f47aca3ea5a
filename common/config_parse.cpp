#include "common/config_parse.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

#include "common/units.hpp"

namespace molt::common::config_detail {

std::string Where::str() const {
  std::string out(base);
  if (key.empty()) return index == kNoIndex ? out : out + '[' + std::to_string(index) + ']';
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

ParseContext::ParseContext(std::string fileName, const FileSource& files, Config& config)
    : fileName_(std::move(fileName)), files_(files), config_(config) {}

void ParseContext::error(JsonPos pos, std::string path, std::string message) {
  errors_.push_back(
      ConfigError{fileName_, pos.line, pos.column, std::move(path), std::move(message)});
}

std::vector<ConfigError> ParseContext::takeErrors() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(errors_);
}

std::optional<std::string> ParseContext::read(const std::string& path, std::string& error) {
  std::optional<std::string> text = files_.read(path, error);
  if (text && sideFileSet_.insert(path).second) config_.sideFiles.push_back(path);
  return text;
}

std::optional<std::vector<std::string>> ParseContext::list(const std::string& path,
                                                           std::string& error) {
  auto names = files_.list ? files_.list(path, error) : std::nullopt;
  if (names && sideFileSet_.insert(path).second) config_.sideFiles.push_back(path);
  return names;
}

void ParseContext::requireBackend(std::string_view name, JsonPos pos, const Where& where) {
  if (!backendNames.count(std::string(name))) {
    error(pos, where, "unknown backend '" + std::string(name) + "'");
  }
}

namespace {

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string rangeText(std::int64_t min, std::int64_t max) {
  if (max == std::numeric_limits<std::int64_t>::max())
    return "must be at least " + std::to_string(min);
  return "must be between " + std::to_string(min) + " and " + std::to_string(max);
}

}  // namespace

std::string_view closestMatch(std::string_view word, const std::string_view* first,
                              const std::string_view* last) {
  constexpr std::size_t kMaxDistance = 2;
  std::string_view best;
  std::size_t bestDistance = kMaxDistance + 1;
  for (; first != last; ++first) {
    std::size_t d = editDistance(word, *first);
    if (d < bestDistance && d < word.size()) {
      best = *first;
      bestDistance = d;
    }
  }
  return best;
}

std::string didYouMean(std::string_view word, std::initializer_list<std::string_view> candidates) {
  std::string_view best = closestMatch(word, candidates.begin(), candidates.end());
  return best.empty() ? "" : " (did you mean '" + std::string(best) + "'?)";
}

bool isValidName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

bool isValidHost(std::string_view host) {
  if (host.substr(0, 2) == "*.") host.remove_prefix(2);
  if (host.empty() || host.front() == '.' || host.back() == '.') return false;
  if (host.find("..") != std::string_view::npos) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

std::string lowerCase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const std::string* readString(ParseContext& ctx, const JsonValue& v, const Where& where) {
  if (v.isString()) return &v.string;
  ctx.error(v.pos, where, "expected a string");
  return nullptr;
}

std::optional<std::string> readName(ParseContext& ctx, const JsonValue& v, const Where& where) {
  const std::string* s = readString(ctx, v, where);
  if (!s) return std::nullopt;
  if (s->empty()) {
    ctx.error(v.pos, where, "must not be empty");
    return std::nullopt;
  }
  if (!isValidName(*s)) {
    ctx.error(v.pos, where, "bad name '" + *s + "': use letters, digits, '_', '.', '-'");
    return std::nullopt;
  }
  if (s->size() > kMaxNameLength) {
    ctx.error(v.pos, where,
              "name of " + std::to_string(s->size()) + " characters: at most " +
                  std::to_string(kMaxNameLength));
    return std::nullopt;
  }
  return *s;
}

std::optional<std::int64_t> readInteger(ParseContext& ctx, const JsonValue& v, const Where& where,
                                        std::int64_t min, std::int64_t max) {
  if (!v.isNumber() || !v.integral) {
    ctx.error(v.pos, where, "expected an integer");
    return std::nullopt;
  }
  if (!v.integer || *v.integer < min || *v.integer > max) {
    ctx.error(v.pos, where, rangeText(min, max));
    return std::nullopt;
  }
  return v.integer;
}

std::optional<bool> readBool(ParseContext& ctx, const JsonValue& v, const Where& where) {
  if (v.isBool()) return v.boolean;
  ctx.error(v.pos, where, "expected a boolean");
  return std::nullopt;
}

std::optional<Millis> readDuration(ParseContext& ctx, const JsonValue& v, const Where& where,
                                   Millis min) {
  if (!v.isString()) {
    ctx.error(v.pos, where, "expected a duration like \"5s\"");
    return std::nullopt;
  }
  std::string error;
  std::optional<Millis> d = parseDuration(v.string, error);
  if (!d) {
    ctx.error(v.pos, where, error);
  } else if (*d < min) {
    ctx.error(
        v.pos, where,
        min == Millis(1) ? "must be greater than 0" : "must be at least " + formatDuration(min));
    d.reset();
  }
  return d;
}

std::optional<std::uint64_t> readSize(ParseContext& ctx, const JsonValue& v, const Where& where,
                                      std::uint64_t max) {
  if (!v.isString()) {
    ctx.error(v.pos, where, "expected a size like \"64MB\"");
    return std::nullopt;
  }
  std::string error;
  std::optional<std::uint64_t> size = parseSize(v.string, error);
  if (!size) {
    ctx.error(v.pos, where, error);
  } else if (*size > max) {
    ctx.error(v.pos, where, "must be at most " + formatSize(max));
    size.reset();
  }
  return size;
}

std::optional<std::string> readAddressText(ParseContext& ctx, const JsonValue& v,
                                           const Where& where, AddressUse use,
                                           SocketAddress& address) {
  const std::string* text = readString(ctx, v, where);
  if (!text) return std::nullopt;
  std::string error;
  std::optional<SocketAddress> parsed = parseAddress(*text, use, error);
  if (!parsed) {
    ctx.error(v.pos, where, error);
    return std::nullopt;
  }
  address = *parsed;
  return *text;
}

Fields::Fields(ParseContext& ctx, const JsonValue& value, std::string path,
               std::initializer_list<std::string_view> known)
    : ctx_(ctx), value_(value), path_(std::move(path)), ok_(value.isObject()) {
  if (!ok_) {
    ctx_.error(value.pos, path_, "expected an object");
    return;
  }
  for (const JsonMember& m : value.members) {
    if (std::find(known.begin(), known.end(), m.key) != known.end()) continue;
    ctx_.error(m.keyPos, at(m.key), "unknown key '" + m.key + "'" + didYouMean(m.key, known));
  }
}

const JsonValue* Fields::get(std::string_view key) const {
  const JsonMember* m = value_.find(key);
  return m ? &m->value : nullptr;
}

bool Fields::require(std::string_view key, std::string_view why) const {
  if (!ok_ || get(key)) return ok_;
  std::string message = "missing required key '" + std::string(key) + "'";
  if (!why.empty()) message += " (" + std::string(why) + ")";
  ctx_.error(value_.pos, path_, std::move(message));
  return false;
}

const std::string* Fields::string(std::string_view key) const {
  const JsonValue* v = get(key);
  return v ? readString(ctx_, *v, at(key)) : nullptr;
}

std::optional<std::string> Fields::name(std::string_view key) const {
  const JsonValue* v = get(key);
  return v ? readName(ctx_, *v, at(key)) : std::nullopt;
}

std::optional<std::int64_t> Fields::integer(std::string_view key, std::int64_t min,
                                            std::int64_t max) const {
  const JsonValue* v = get(key);
  return v ? readInteger(ctx_, *v, at(key), min, max) : std::nullopt;
}

std::optional<bool> Fields::boolean(std::string_view key) const {
  const JsonValue* v = get(key);
  return v ? readBool(ctx_, *v, at(key)) : std::nullopt;
}

std::optional<Millis> Fields::duration(std::string_view key, Millis min) const {
  const JsonValue* v = get(key);
  return v ? readDuration(ctx_, *v, at(key), min) : std::nullopt;
}

std::optional<std::uint64_t> Fields::size(std::string_view key, std::uint64_t max) const {
  const JsonValue* v = get(key);
  return v ? readSize(ctx_, *v, at(key), max) : std::nullopt;
}

std::optional<std::string> Fields::absolutePath(std::string_view key) const {
  const std::string* s = string(key);
  if (!s) return std::nullopt;
  if (s->empty() || s->front() != '/') {
    ctx_.error(get(key)->pos, at(key), "expected an absolute path (starting with '/')");
    return std::nullopt;
  }
  return *s;
}

const JsonValue* Fields::array(std::string_view key) const {
  const JsonValue* v = get(key);
  if (!v || v->isArray()) return v;
  ctx_.error(v->pos, at(key), "expected an array");
  return nullptr;
}

const JsonValue* Fields::object(std::string_view key) const {
  const JsonValue* v = get(key);
  if (!v || v->isObject()) return v;
  ctx_.error(v->pos, at(key), "expected an object");
  return nullptr;
}

std::optional<std::size_t> Fields::readChoiceAt(const JsonValue& v, std::string_view key,
                                                const std::string_view* names,
                                                std::size_t n) const {
  const std::string* s = readString(ctx_, v, at(key));
  if (!s) return std::nullopt;
  for (std::size_t i = 0; i < n; ++i) {
    if (names[i] == *s) return i;
  }
  std::string message = "expected one of ";
  for (std::size_t i = 0; i < n; ++i) message += (i ? ", \"" : "\"") + std::string(names[i]) + "\"";
  std::string_view best = closestMatch(*s, names, names + n);
  if (!best.empty()) message += " (did you mean \"" + std::string(best) + "\"?)";
  ctx_.error(v.pos, at(key), std::move(message));
  return std::nullopt;
}

}  // namespace molt::common::config_detail
