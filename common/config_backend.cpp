// Parsing of the "backends" section: backends, their health checks, servers and templates.
#include <algorithm>
#include <charconv>
#include <limits>

#include "common/config_parse.hpp"

namespace molt::common::config_detail {

namespace {

constexpr std::int64_t kMaxTemplateServers = 1'000'000;
constexpr std::int64_t kNoMax = std::numeric_limits<std::int64_t>::max();

bool isTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::optional<int> statusNumber(ParseContext& ctx, std::string_view digits, const JsonValue& v,
                                const Where& where) {
  int n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size()) {
    ctx.error(v.pos, where, "expected a status like 200 or a range like \"200-399\"");
    return std::nullopt;
  }
  if (n < 100 || n > 599) {
    ctx.error(v.pos, where, "status must be between 100 and 599");
    return std::nullopt;
  }
  return n;
}

// "status": 200 or "status": "200-399" (or "200").
void readStatus(const Fields& f, CheckConfig& c) {
  const JsonValue* v = f.get("status");
  if (!v) return;
  Where where = f.at("status");
  if (v->isNumber()) {
    if (auto n = readInteger(f.ctx(), *v, where, 100, 599)) c.statusMin = c.statusMax = int(*n);
    return;
  }
  if (!v->isString()) {
    f.ctx().error(v->pos, where, "expected a status like 200 or a range like \"200-399\"");
    return;
  }
  std::string_view text = v->string;
  std::size_t dash = text.find('-');
  auto min = statusNumber(f.ctx(), text.substr(0, dash), *v, where);
  if (!min) return;
  auto max = dash == std::string_view::npos
                 ? min
                 : statusNumber(f.ctx(), text.substr(dash + 1), *v, where);
  if (!max) return;
  if (*min > *max) {
    f.ctx().error(v->pos, where,
                  "status range reversed: " + std::to_string(*min) + " > " + std::to_string(*max));
    return;
  }
  c.statusMin = *min;
  c.statusMax = *max;
}

void resolveServerCheck(const Fields& f, const BackendConfig& backend, ServerConfig& s) {
  s.check = backend.check.has_value();
  const JsonValue* v = f.get("check");
  if (!v) return;
  if (v->isBool()) {
    s.check = v->boolean;
    if (s.check && !backend.check) s.checkOverride = std::make_shared<const CheckConfig>();
  } else if (v->isObject()) {
    s.check = true;
    s.checkOverride = std::make_shared<const CheckConfig>(
        parseCheck(f.ctx(), *v, f.pathOf("check"), backend.check.value_or(CheckConfig{})));
  } else {
    f.ctx().error(v->pos, f.at("check"), "expected a boolean or an object");
  }
}

// The fields servers and templates share: address, weight, check, disabled.
void readServerCommon(const Fields& f, const BackendConfig& backend, ServerConfig& s) {
  if (f.require("address")) {
    readAddressText(f.ctx(), *f.get("address"), f.at("address"), AddressUse::Connect, s.address);
  }
  if (auto n = f.integer("weight", 0, 256)) s.weight = static_cast<unsigned>(*n);
  if (auto b = f.boolean("disabled")) {
    s.disabled = *b;
    s.admin = *b ? ServerAdmin::Maint : ServerAdmin::Ready;
  }
  resolveServerCheck(f, backend, s);
}

// Servers expanded so far, with the index of the "servers" entry each came from.
struct ServerList {
  BackendConfig& backend;
  std::vector<std::uint32_t> origins;

  void add(ServerConfig s, std::uint32_t origin) {
    backend.servers.push_back(std::move(s));
    origins.push_back(origin);
  }
};

void parseServer(ParseContext& ctx, const JsonValue& v, std::string path, ServerList& list,
                 std::uint32_t index) {
  Fields f(ctx, v, std::move(path), {"name", "address", "weight", "check", "disabled"});
  if (!f.ok()) return;
  ServerConfig s;
  if (f.require("name")) {
    if (auto name = f.name("name")) s.name = std::move(*name);
  }
  readServerCommon(f, list.backend, s);
  list.add(std::move(s), index);
}

// The address is resolved once for the whole range, never per expanded server.
void parseTemplate(ParseContext& ctx, const JsonValue& v, std::string path, ServerList& list,
                   std::uint32_t index) {
  Fields f(ctx, v, std::move(path),
           {"template", "from", "to", "address", "weight", "check", "disabled"});
  auto prefix = f.name("template");
  bool hasFrom = f.require("from");
  bool hasTo = f.require("to");
  auto from = f.integer("from", 0, kNoMax);
  auto to = f.integer("to", 0, kNoMax);
  ServerConfig proto;
  readServerCommon(f, list.backend, proto);
  if (!prefix || !hasFrom || !hasTo || !from || !to) return;
  if (*from > *to) {
    ctx.error(
        f.get("to")->pos, f.at("to"),
        "template range reversed: from " + std::to_string(*from) + " > to " + std::to_string(*to));
    return;
  }
  if (*to - *from >= kMaxTemplateServers) {
    ctx.error(f.get("to")->pos, f.at("to"),
              "template expands to " + std::to_string(*to - *from + 1) + " servers; at most " +
                  std::to_string(kMaxTemplateServers));
    return;
  }
  std::vector<ServerConfig>& servers = list.backend.servers;
  std::size_t needed = servers.size() + static_cast<std::size_t>(*to - *from + 1);
  if (servers.capacity() < needed) servers.reserve(std::max(needed, 2 * servers.capacity()));
  list.origins.reserve(servers.capacity());
  char digits[24];
  for (std::int64_t n = *from; n <= *to; ++n) {
    auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    ServerConfig s = proto;
    s.name.reserve(prefix->size() + static_cast<std::size_t>(end - digits));
    s.name.append(*prefix).append(digits, end);
    list.add(std::move(s), index);
  }
}

void parseEntry(ParseContext& ctx, const JsonValue& v, std::string path, ServerList& list,
                std::uint32_t index) {
  if (v.isObject() && v.find("template")) {
    parseTemplate(ctx, v, std::move(path), list, index);
  } else {
    parseServer(ctx, v, std::move(path), list, index);
  }
}

// One hash lookup per server: templates of a million servers stay fast. A template colliding with
// another entry is reported once, at its first duplicate name.
void checkServerNames(ParseContext& ctx, const JsonValue& entries, const std::string& path,
                      const ServerList& list) {
  const std::vector<ServerConfig>& servers = list.backend.servers;
  std::unordered_map<std::string_view, std::uint32_t> seen;
  seen.reserve(servers.size());
  std::uint32_t lastReported = std::numeric_limits<std::uint32_t>::max();
  for (std::size_t k = 0; k < servers.size(); ++k) {
    std::uint32_t origin = list.origins[k];
    if (servers[k].name.empty()) continue;
    auto [it, inserted] = seen.emplace(servers[k].name, origin);
    if (inserted || origin == lastReported) continue;
    lastReported = origin;
    const JsonValue& entry = entries.items[origin];
    const JsonMember* named = entry.find("template");
    if (!named) named = entry.find("name");
    std::string entryPath = Where{path, origin}.str();
    ctx.error(named->value.pos, entryPath + "." + named->key,
              "duplicate server name '" + servers[k].name + "' (first at " +
                  Where{path, it->second}.str() + ")");
  }
}

void parseServers(ParseContext& ctx, const JsonValue& entries, const std::string& path,
                  BackendConfig& backend) {
  ServerList list{backend, {}};
  backend.servers.reserve(entries.items.size());
  list.origins.reserve(entries.items.size());
  for (std::uint32_t j = 0; j < entries.items.size(); ++j) {
    const JsonValue& entry = entries.items[j];
    parseEntry(ctx, entry, Where{path, j}.str(), list, j);
  }
  checkServerNames(ctx, entries, path, list);
}

void parseBackendTimeouts(ParseContext& ctx, const JsonValue& v, std::string path,
                          BackendTimeouts& out) {
  Fields f(ctx, v, std::move(path), {"connect", "server", "tunnel"});
  if (auto d = f.duration("connect", Millis(1))) out.connect = *d;
  if (auto d = f.duration("server", Millis(1))) out.server = *d;
  if (auto d = f.duration("tunnel", Millis(1))) out.tunnel = *d;
}

}  // namespace

BackendConfig parseBackend(ParseContext& ctx, const JsonValue& v, std::string path) {
  Fields f(ctx, v, std::move(path),
           {"name", "balance", "check", "timeouts", "retries", "deny", "servers"});
  BackendConfig backend;
  if (!f.ok()) return backend;
  if (f.require("name")) {
    if (auto name = f.name("name")) backend.name = std::move(*name);
  }
  if (auto b = f.choice<Balance>("balance", {{"roundrobin", Balance::RoundRobin},
                                             {"leastconn", Balance::LeastConn},
                                             {"source", Balance::Source},
                                             {"random", Balance::Random}})) {
    backend.balance = *b;
  }
  if (const JsonValue* c = f.object("check")) {
    backend.check = parseCheck(ctx, *c, f.pathOf("check"), CheckConfig{});
  }
  if (const JsonValue* t = f.object("timeouts")) {
    parseBackendTimeouts(ctx, *t, f.pathOf("timeouts"), backend.timeouts);
  }
  if (auto n = f.integer("retries", 0, 10)) backend.retries = static_cast<unsigned>(*n);
  if (auto n = f.integer("deny", 100, 599)) backend.deny = static_cast<int>(*n);
  if (const JsonValue* servers = f.array("servers")) {
    if (f.get("deny") && !servers->items.empty()) {
      ctx.error(servers->pos, f.at("servers"), "a backend with 'deny' must have no servers");
    }
    parseServers(ctx, *servers, f.pathOf("servers"), backend);
  }
  return backend;
}

void parseServerEntry(ParseContext& ctx, const JsonValue& v, std::string path,
                      BackendConfig& backend) {
  ServerList list{backend, {}};
  parseEntry(ctx, v, std::move(path), list, 0);
}

CheckConfig parseCheck(ParseContext& ctx, const JsonValue& v, const std::string& path,
                       CheckConfig c) {
  Fields f(ctx, v, path,
           {"type", "method", "path", "host", "status", "interval", "timeout", "rise", "fall"});
  if (!f.ok()) return c;
  if (auto t = f.choice<CheckType>("type", {{"tcp", CheckType::Tcp}, {"http", CheckType::Http}})) {
    c.type = *t;
  }
  if (const std::string* m = f.string("method")) {
    if (!m->empty() && std::all_of(m->begin(), m->end(), isTokenChar)) {
      c.method = *m;
    } else {
      ctx.error(f.get("method")->pos, f.at("method"), "expected an HTTP method like \"GET\"");
    }
  }
  if (const std::string* p = f.string("path")) {
    if (!p->empty() && p->front() == '/') {
      c.path = *p;
    } else {
      ctx.error(f.get("path")->pos, f.at("path"), "must start with '/'");
    }
  }
  if (const std::string* h = f.string("host")) c.host = *h;
  readStatus(f, c);
  if (auto d = f.duration("interval", Millis(1))) c.interval = *d;
  if (auto d = f.duration("timeout", Millis(1))) c.timeout = *d;
  if (auto n = f.integer("rise", 1, 100)) c.rise = static_cast<unsigned>(*n);
  if (auto n = f.integer("fall", 1, 100)) c.fall = static_cast<unsigned>(*n);
  return c;
}

void parseBackends(ParseContext& ctx, const JsonValue& v, std::vector<BackendConfig>& out) {
  for (auto& name : parseNamedList(ctx, v, out, "backends", "backend", parseBackend))
    ctx.backendNames.insert(std::move(name));
}

}  // namespace molt::common::config_detail
