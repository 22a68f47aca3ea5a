#include "common/config.hpp"

#include <cstdlib>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>
#include <thread>

#include "common/config_parse.hpp"
#include "common/redis.hpp"
#include "common/unique_fd.hpp"

namespace molt::common {

using config_detail::Fields;
using config_detail::ParseContext;

std::string ConfigError::str() const {
  std::string out = file;
  if (line > 0) out += ':' + std::to_string(line) + ':' + std::to_string(column);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  return out + message;
}

namespace {

std::string joinLines(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const ConfigError& e : errors) {
    if (!out.empty()) out += '\n';
    out += e.str();
  }
  return out;
}

}  // namespace

ConfigErrors::ConfigErrors(std::vector<ConfigError> errors)
    : errors_(std::move(errors)), text_(joinLines(errors_)) {}

const BackendConfig* Config::findBackend(std::string_view name) const {
  for (const BackendConfig& backend : backends) {
    if (backend.name == name) return &backend;
  }
  return nullptr;
}

const CheckConfig* BackendConfig::checkOf(const ServerConfig& server) const {
  static const CheckConfig kDefaultCheck;
  if (!server.check) return nullptr;
  if (server.checkOverride) return &*server.checkOverride;
  return check ? &*check : &kDefaultCheck;
}

namespace {

std::nullopt_t fail(std::string& error, const char* message) {
  error = message;
  return std::nullopt;
}

std::optional<std::string> readDiskFile(const std::string& path, std::string& error) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) return fail(error, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return fail(error, std::strerror(EISDIR));
  std::string text;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(error, std::strerror(errno));
    if (n == 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<std::vector<std::string>> listDiskDirectory(const std::string& path,
                                                          std::string& error) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) return fail(error, std::strerror(errno));
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(dir.get())) {
    // Hidden names are skipped too: editor droppings, and Kubernetes' "..data" secret-mount links.
    struct stat st {};
    if (entry->d_name[0] == '.' || ::fstatat(::dirfd(dir.get()), entry->d_name, &st, 0) != 0) {
      continue;
    }
    if (S_ISREG(st.st_mode)) names.emplace_back(entry->d_name);
  }
  if (errno != 0) return fail(error, std::strerror(errno));
  std::sort(names.begin(), names.end());
  return names;
}

unsigned defaultWorkers() {
  return std::max(1u, std::thread::hardware_concurrency());
}

void checkAccount(const Fields& f, std::string_view key, std::string& out) {
  const std::string* name = f.string(key);
  if (!name) return;
  const JsonValue& v = *f.get(key);
  bool isUser = key == "user";
  if (name->empty()) {
    f.ctx().error(v.pos, f.at(key), "must not be empty");
  } else if (isUser ? ::getpwnam(name->c_str()) == nullptr : ::getgrnam(name->c_str()) == nullptr) {
    f.ctx().error(v.pos, f.at(key), (isUser ? "unknown user '" : "unknown group '") + *name + "'");
  } else {
    out = *name;
  }
}

void parseTopLevel(ParseContext& ctx, const JsonValue& root, Config& config) {
  if (!root.isObject()) {
    ctx.error(root.pos, "", "the top level must be an object");
    return;
  }
  Fields top(ctx, root, "", {"global", "tls", "fleet", "frontends", "backends"});
  if (const JsonValue* v = top.get("global")) config_detail::parseGlobal(ctx, *v, config.global);
  if (const JsonValue* v = top.get("tls")) config_detail::parseTls(ctx, *v, config.tls);
  if (const JsonValue* v = top.get("fleet")) config_detail::parseFleet(ctx, *v, config.fleet);
  // Backends first: frontends check their references against the backend names.
  if (const JsonValue* v = top.array("backends")) {
    config_detail::parseBackends(ctx, *v, config.backends);
  }
  if (const JsonValue* v = top.array("frontends")) {
    config_detail::parseFrontends(ctx, *v, config.frontends);
  }
}

}  // namespace

FileSource FileSource::disk() {
  return FileSource{readDiskFile, listDiskDirectory};
}

namespace config_detail {

void parseGlobal(ParseContext& ctx, const JsonValue& v, GlobalConfig& out) {
  Fields f(
      ctx, v, "global",
      {"workers", "hard_stop_after", "max_old_generations", "close_spread", "api_socket", "user",
       "group", "state_file", "log_format", "api_users", "reload_timeout", "migrate", "metrics"});
  if (auto n = f.integer("workers", 1, 1024)) out.workers = static_cast<unsigned>(*n);
  if (auto d = f.duration("hard_stop_after", Millis(1))) out.hardStopAfter = *d;
  if (auto n = f.integer("max_old_generations", 0, 1000)) {
    out.maxOldGenerations = static_cast<unsigned>(*n);
  }
  if (auto d = f.duration("close_spread")) out.closeSpread = *d;
  if (auto b = f.boolean("migrate")) out.migrate = *b;
  if (auto s = f.absolutePath("api_socket")) out.apiSocket = *s;
  if (const JsonValue* m = f.get("metrics")) {
    SocketAddress address;
    if (auto text = readAddressText(ctx, *m, f.at("metrics"), AddressUse::Bind, address)) {
      out.metrics = address;
      out.metricsText = *text;
    }
  }
  checkAccount(f, "user", out.user);
  checkAccount(f, "group", out.group);
  if (const JsonValue* users = f.array("api_users")) {
    const std::string listPath = f.pathOf("api_users");
    for (std::size_t i = 0; i < users->items.size(); ++i) {
      Where where{listPath, i};
      const std::string* name = readString(ctx, users->items[i], where);
      if (!name) continue;
      if (name->empty() || ::getpwnam(name->c_str()) == nullptr)
        ctx.error(users->items[i].pos, where, "unknown user '" + *name + "'");
      else
        out.apiUsers.push_back(*name);
    }
  }
  if (auto d = f.duration("reload_timeout", std::chrono::seconds(1))) out.reloadTimeout = *d;
  if (auto s = f.absolutePath("state_file")) out.stateFile = *s;
  if (auto e = f.choice<LogFormat>("log_format",
                                   {{"text", LogFormat::Text}, {"json", LogFormat::Json}})) {
    out.logFormat = *e;
  }
}

void parseTls(ParseContext& ctx, const JsonValue& v, TlsConfig& out) {
  constexpr std::uint64_t kMaxSessionCache = 64ull << 30;
  constexpr std::uint64_t kMinSessionCache = 128 * 1024;  // room for a few hundred sessions
  Fields f(ctx, v, "tls",
           {"session_cache", "ticket_key_rotation", "session_timeout", "ciphers", "ciphersuites",
            "min_version", "tickets", "prefer_server_ciphers"});
  if (auto n = f.size("session_cache", kMaxSessionCache)) {
    if (*n != 0 && *n < kMinSessionCache)
      ctx.error(f.get("session_cache")->pos, f.at("session_cache"),
                "too small: at least \"128KB\" (or \"0B\" for no shared cache)");
    else
      out.sessionCacheBytes = *n;
  }
  if (auto b = f.boolean("tickets")) out.tickets = *b;
  if (auto b = f.boolean("prefer_server_ciphers")) out.preferServerCiphers = *b;
  if (auto d = f.duration("ticket_key_rotation", std::chrono::minutes(1))) {
    out.ticketKeyRotation = *d;
  }
  if (auto d = f.duration("session_timeout", Millis(1))) out.sessionTimeout = *d;
  if (auto s = f.string("ciphers")) out.ciphers = *s;
  if (auto s = f.string("ciphersuites")) out.ciphersuites = *s;
  if (auto s = f.choice<std::string_view>("min_version",
                                          {{"TLSv1.2", "TLSv1.2"}, {"TLSv1.3", "TLSv1.3"}})) {
    out.minVersion = std::string(*s);
  }
}

// Redis keys are binary-safe, but the prefix also names keys an operator types into redis-cli.
void parseFleet(ParseContext& ctx, const JsonValue& v, FleetConfig& out) {
  constexpr std::size_t kMaxPrefix = 100;
  Fields f(ctx, v, "fleet", {"redis", "prefix", "password_file", "session_ttl", "lookup_timeout"});
  if (!f.ok()) return;
  out.enabled = true;
  if (f.require("redis")) {
    if (const std::string* text = f.string("redis")) {
      std::string error;
      if (!parseRedisTarget(*text, error))
        ctx.error(f.get("redis")->pos, f.at("redis"), error);
      else
        out.redis = *text;
    }
  }
  if (const std::string* prefix = f.string("prefix")) {
    bool printable =
        std::all_of(prefix->begin(), prefix->end(), [](char c) { return c > ' ' && c < 127; });
    if (prefix->empty() || prefix->size() > kMaxPrefix || !printable)
      ctx.error(f.get("prefix")->pos, f.at("prefix"),
                "must be 1 to 100 printable characters without spaces");
    else
      out.prefix = *prefix;
  }
  if (auto path = f.absolutePath("password_file")) {
    std::string error;
    std::optional<std::string> text = ctx.read(*path, error);
    if (!text) {
      ctx.error(f.get("password_file")->pos, f.at("password_file"), *path + ": " + error);
    } else {
      std::string password = text->substr(0, text->find('\n'));
      if (!password.empty() && password.back() == '\r') password.pop_back();
      if (password.empty())
        ctx.error(f.get("password_file")->pos, f.at("password_file"),
                  *path + ": empty (the password is the file's first line)");
      out.passwordFile = *path;
      out.password = std::move(password);
    }
  }
  if (auto d = f.duration("session_ttl", std::chrono::seconds(1))) out.sessionTtl = *d;
  if (auto d = f.duration("lookup_timeout", Millis(1))) {
    if (*d > std::chrono::seconds(1))
      ctx.error(f.get("lookup_timeout")->pos, f.at("lookup_timeout"),
                "at most \"1s\": every resuming handshake may wait this long");
    else
      out.lookupTimeout = *d;
  }
}

}  // namespace config_detail

namespace {

ConfigValidator gValidator;

// The value at a path like "frontends[0].certificates[1]", or the deepest one found on the way.
const JsonValue& valueAt(const JsonValue& root, std::string_view path) {
  const JsonValue* at = &root;
  while (!path.empty()) {
    if (path.front() == '.') path.remove_prefix(1);
    if (path.front() == '[') {
      size_t close = path.find(']');
      if (close == std::string_view::npos || !at->isArray()) break;
      size_t index = std::strtoul(std::string(path.substr(1, close - 1)).c_str(), nullptr, 10);
      if (index >= at->items.size()) break;
      at = &at->items[index];
      path.remove_prefix(close + 1);
      continue;
    }
    size_t end = path.find_first_of(".[");
    const JsonMember* member = at->find(path.substr(0, end));
    if (!member) break;
    at = &member->value;
    path.remove_prefix(end == std::string_view::npos ? path.size() : end);
  }
  return *at;
}

void runValidator(ParseContext& ctx, const JsonValue& root, const Config& config,
                  const FileSource& files) {
  if (!gValidator) return;
  gValidator(config, files, [&](const std::string& path, const std::string& message) {
    ctx.error(valueAt(root, path).pos, path, message);
  });
}

}  // namespace

void setConfigValidator(ConfigValidator validator) {
  gValidator = std::move(validator);
}

Config parseConfig(std::string_view text, const std::string& fileName, const FileSource& files) {
  try {
    Config config;
    config.fileName = fileName;
    config.global.workers = defaultWorkers();
    ParseContext ctx(fileName, files, config);
    JsonDocument doc = parseJsonc(text);
    for (JsonError& e : doc.errors) ctx.error(e.pos, std::move(e.path), std::move(e.message));
    if (doc.root) parseTopLevel(ctx, *doc.root, config);
    if (!ctx.hasErrors() && doc.root) runValidator(ctx, *doc.root, config, files);
    if (ctx.hasErrors()) throw ConfigErrors(ctx.takeErrors());
    return config;
  } catch (const ConfigErrors&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw ConfigErrors({ConfigError{fileName, 0, 0, "", "out of memory while parsing"}});
  } catch (const std::exception& e) {
    // A FileSource callback may throw; the caller is promised ConfigErrors only.
    throw ConfigErrors(
        {ConfigError{fileName, 0, 0, "", std::string("internal error: ") + e.what()}});
  }
}

Config loadConfigFile(const std::string& path, const FileSource& files) {
  std::string error;
  std::optional<std::string> text = files.read(path, error);
  if (!text) throw ConfigErrors({ConfigError{path, 0, 0, "", "cannot read: " + error}});
  return parseConfig(*text, path, files);
}

}  // namespace molt::common
