// Internal to the config parser (common/config*.cpp): the error collector, typed readers over the
// JSON tree, and the per-section parse steps. Nothing outside common/config*.cpp includes this but
// the runtime changes (common/runtime_change*.cpp), which parse servers and backends as the file
// does.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/config.hpp"
#include "common/jsonc.hpp"

namespace molt::common::config_detail {

// Where a value sits in the document; turned into "a.b[3].c" only when an error is reported, so
// that reading 100k servers does not build 100k path strings.
struct Where {
  static constexpr std::size_t kNoIndex = static_cast<std::size_t>(-1);
  explicit Where(std::string_view path) : base(path) {}
  Where(std::string_view object, std::string_view member) : base(object), key(member) {}
  Where(std::string_view array, std::size_t element) : base(array), index(element) {}

  std::string_view base;
  std::string_view key;          // "base.key" when set
  std::size_t index = kNoIndex;  // else "base[index]" when set, else "base"
  std::string str() const;
};

// The state of one parseConfig call: collected errors, side files read, names seen so far.
class ParseContext {
 public:
  ParseContext(std::string fileName, const FileSource& files, Config& config);

  void error(JsonPos pos, std::string path, std::string message);
  void error(JsonPos pos, const Where& where, std::string message) {
    error(pos, where.str(), std::move(message));
  }
  bool hasErrors() const { return !errors_.empty(); }
  // The errors sorted by (line, column), file order kept for equal positions.
  std::vector<ConfigError> takeErrors();

  // FileSource::read / list; a successful read or list adds `path` to Config::sideFiles once.
  std::optional<std::string> read(const std::string& path, std::string& error);
  std::optional<std::vector<std::string>> list(const std::string& path, std::string& error);

  // Reports "unknown backend 'x'" unless a backend of that name was defined.
  void requireBackend(std::string_view name, JsonPos pos, const Where& where);
  // Names of all defined backends; filled by parseBackends before frontends are parsed.
  std::unordered_set<std::string> backendNames;
  // Bind address text -> path of the bind that used it first ("frontends[0].bind[0]").
  std::unordered_map<std::string, std::string> boundAddresses;

 private:
  std::string fileName_;
  const FileSource& files_;
  Config& config_;
  std::unordered_set<std::string> sideFileSet_;
  std::vector<ConfigError> errors_;
};

// The candidate in [first, last) closest to `word` within edit distance 2, or "".
std::string_view closestMatch(std::string_view word, const std::string_view* first,
                              const std::string_view* last);
// " (did you mean 'x'?)" for closestMatch, or "".
std::string didYouMean(std::string_view word, std::initializer_list<std::string_view> candidates);

// Value readers: nullopt (or nullptr) when the value is invalid, which they report.
const std::string* readString(ParseContext& ctx, const JsonValue& v, const Where& where);
std::optional<std::string> readName(ParseContext& ctx, const JsonValue& v, const Where& where);
std::optional<std::int64_t> readInteger(ParseContext& ctx, const JsonValue& v, const Where& where,
                                        std::int64_t min, std::int64_t max);
std::optional<bool> readBool(ParseContext& ctx, const JsonValue& v, const Where& where);
// `min` of 1ms reads as "must be greater than 0".
std::optional<Millis> readDuration(ParseContext& ctx, const JsonValue& v, const Where& where,
                                   Millis min);
std::optional<std::uint64_t> readSize(ParseContext& ctx, const JsonValue& v, const Where& where,
                                      std::uint64_t max);
std::optional<std::string> readAddressText(ParseContext& ctx, const JsonValue& v,
                                           const Where& where, AddressUse use,
                                           SocketAddress& address);

// One JSON object being read: reports a non-object and every unknown key on construction; the
// getters return nullopt both when the key is absent and when its value is invalid (reported).
class Fields {
 public:
  Fields(ParseContext& ctx, const JsonValue& value, std::string path,
         std::initializer_list<std::string_view> known);

  bool ok() const { return ok_; }  // the value is an object
  const std::string& path() const { return path_; }
  const JsonValue& value() const { return value_; }
  const JsonValue* get(std::string_view key) const;
  Where at(std::string_view key) const { return Where{path_, key}; }
  std::string pathOf(std::string_view key) const { return at(key).str(); }
  // Reports "missing required key" at this object when `key` is absent; returns presence.
  bool require(std::string_view key, std::string_view why = {}) const;

  const std::string* string(std::string_view key) const;
  std::optional<std::string> name(std::string_view key) const;
  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min,
                                      std::int64_t max) const;
  std::optional<bool> boolean(std::string_view key) const;
  std::optional<Millis> duration(std::string_view key, Millis min = Millis(0)) const;
  std::optional<std::uint64_t> size(std::string_view key, std::uint64_t max) const;
  std::optional<std::string> absolutePath(std::string_view key) const;
  const JsonValue* array(std::string_view key) const;
  const JsonValue* object(std::string_view key) const;

  template <class E>
  std::optional<E> choice(std::string_view key,
                          std::initializer_list<std::pair<std::string_view, E>> options) const {
    const JsonValue* v = get(key);
    if (!v) return std::nullopt;
    std::vector<std::string_view> names;
    for (const auto& option : options) names.push_back(option.first);
    auto index = readChoiceAt(*v, key, names.data(), names.size());
    if (!index) return std::nullopt;
    return (options.begin() + *index)->second;
  }

  ParseContext& ctx() const { return ctx_; }

 private:
  std::optional<std::size_t> readChoiceAt(const JsonValue& v, std::string_view key,
                                          const std::string_view* names, std::size_t n) const;

  ParseContext& ctx_;
  const JsonValue& value_;
  std::string path_;
  bool ok_ = false;
};

// The parse steps, one per section; each appends what it could read and reports the rest.
void parseGlobal(ParseContext& ctx, const JsonValue& v, GlobalConfig& out);
void parseTls(ParseContext& ctx, const JsonValue& v, TlsConfig& out);
void parseFleet(ParseContext& ctx, const JsonValue& v, FleetConfig& out);
void parseBackends(ParseContext& ctx, const JsonValue& v, std::vector<BackendConfig>& out);
void parseFrontends(ParseContext& ctx, const JsonValue& v, std::vector<FrontendConfig>& out);
// One element of "backends" at `path` (its servers' names checked against each other).
BackendConfig parseBackend(ParseContext& ctx, const JsonValue& v, std::string path);
// One element of a backend's "servers" at `path`: a server, or a template expanded, appended to
// `backend.servers`, its check resolved against `backend.check`. The new names are not checked
// against the backend's other servers: the caller does that.
void parseServerEntry(ParseContext& ctx, const JsonValue& v, std::string path,
                      BackendConfig& backend);
// A check object read over `base` (the backend's check, or defaults for a backend's own); the
// fields that are invalid (and reported) keep their `base` value.
CheckConfig parseCheck(ParseContext& ctx, const JsonValue& v, const std::string& path,
                       CheckConfig base);

// Frontend and backend names: [A-Za-z0-9_.-]+.
bool isValidName(std::string_view name);
// Names of frontends, backends, servers and the like are at most this long (they are labels in
// metrics and fit a worker's stats row: shm/worker_stats.hpp).
inline constexpr std::size_t kMaxNameLength = 200;
// An exact lower-case host name, or "*." followed by one.
bool isValidHost(std::string_view host);
// ASCII lower case, as hosts are compared.
std::string lowerCase(std::string_view text);

// Parses every element of the array `v` (a "frontends" or "backends" list) with
// `parse(ctx, element, path)` into `out`, refusing a name used twice ("duplicate backend name
// 'x' (first at backends[0])"). Returns the names, in order.
template <class T, class Parse>
std::vector<std::string> parseNamedList(ParseContext& ctx, const JsonValue& v, std::vector<T>& out,
                                        const char* list, const char* what, Parse parse) {
  std::unordered_map<std::string, std::size_t> first;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < v.items.size(); ++i) {
    std::string path = Where{list, i}.str();
    out.push_back(parse(ctx, v.items[i], path));
    const std::string& name = out.back().name;
    if (name.empty()) continue;
    names.push_back(name);
    auto [it, inserted] = first.emplace(name, i);
    if (!inserted)
      ctx.error(v.items[i].find("name")->value.pos, path + ".name",
                std::string("duplicate ") + what + " name '" + name + "' (first at " + list + "[" +
                    std::to_string(it->second) + "])");
  }
  return names;
}

}  // namespace molt::common::config_detail
