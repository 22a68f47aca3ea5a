// Parsing of the "frontends" section: binds, certificates, routes and host maps.
#include <algorithm>

#include "common/config_parse.hpp"

namespace molt::common::config_detail {

namespace {

// "alpn": ["h2", "http/1.1"], the protocols of an http bind in order of preference.
void parseAlpn(const Fields& f, Mode mode, BindConfig& bind) {
  const JsonValue* list = f.array("alpn");
  if (!list) return;
  ParseContext& ctx = f.ctx();
  if (mode != Mode::Http) {
    ctx.error(list->pos, f.at("alpn"), "needs mode http");
    return;
  }
  bind.h2 = bind.http11 = false;
  std::string path = f.pathOf("alpn");
  for (std::size_t i = 0; i < list->items.size(); ++i) {
    const JsonValue& item = list->items[i];
    bool* flag = !item.isString()            ? nullptr
                 : item.string == "h2"       ? &bind.h2
                 : item.string == "http/1.1" ? &bind.http11
                                             : nullptr;
    if (!flag) {
      ctx.error(item.pos, Where{path, i}.str(), "expected \"h2\" or \"http/1.1\"");
    } else if (*flag) {
      ctx.error(item.pos, Where{path, i}.str(), "named twice");
    } else {
      *flag = true;
      if (i == 0) bind.preferH2 = flag == &bind.h2;
    }
  }
  if (!bind.h2 && !bind.http11) ctx.error(list->pos, path, "must name a protocol");
}

// Returns the bind's "tls" flag even when its address is invalid, for the certificates check.
bool parseBind(ParseContext& ctx, const JsonValue& v, const std::string& path,
               FrontendConfig& frontend) {
  BindConfig bind;
  const JsonValue* address = &v;
  std::string addressPath = path;
  if (v.isObject()) {
    Fields f(ctx, v, path, {"address", "tls", "backlog", "alpn"});
    if (auto b = f.boolean("tls")) bind.tls = *b;
    if (auto n = f.integer("backlog", 1, 65535)) bind.backlog = static_cast<int>(*n);
    parseAlpn(f, frontend.mode, bind);
    if (!f.require("address")) return bind.tls;
    address = f.get("address");
    addressPath = f.pathOf("address");
  } else if (!v.isString()) {
    ctx.error(v.pos, path, "expected a string or an object");
    return false;
  }
  if (!readAddressText(ctx, *address, Where{addressPath}, AddressUse::Bind, bind.address)) {
    return bind.tls;
  }
  bind.text = bind.address.text();
  // Port 0 asks the kernel for a fresh port each time: never a clash.
  if (bind.address.port() != 0) {
    auto [it, inserted] = ctx.boundAddresses.emplace(bind.text, path);
    if (!inserted) ctx.error(address->pos, addressPath, "address already bound by " + it->second);
  }
  frontend.binds.push_back(std::move(bind));
  return frontend.binds.back().tls;
}

// Returns whether any bind asks for TLS.
bool parseBinds(const Fields& f, FrontendConfig& frontend) {
  if (!f.require("bind")) return false;
  const JsonValue* list = f.array("bind");
  if (!list) return false;
  if (list->items.empty()) f.ctx().error(list->pos, f.at("bind"), "must not be empty");
  std::string path = f.pathOf("bind");
  bool anyTls = false;
  for (std::size_t i = 0; i < list->items.size(); ++i) {
    anyTls |= parseBind(f.ctx(), list->items[i], Where{path, i}.str(), frontend);
  }
  return anyTls;
}

// A certificate path is a directory of PEM files or one PEM file: list it, else read it. The
// files of a directory are read too, so that a worker's handover bundle holds their bytes.
// Returns the problem, or "" when every file could be read.
std::string readCertificatePath(ParseContext& ctx, const std::string& path) {
  std::string error;
  std::optional<std::vector<std::string>> names = ctx.list(path, error);
  if (!names) return ctx.read(path, error) ? "" : path + ": cannot read: " + error;
  std::string dir = path.back() == '/' ? path : path + '/';
  for (const std::string& name : *names) {
    if (!ctx.read(dir + name, error)) return dir + name + ": cannot read: " + error;
  }
  return "";
}

void parseCertificates(const Fields& f, bool anyTls, FrontendConfig& frontend) {
  ParseContext& ctx = f.ctx();
  const JsonValue* list = f.get("certificates");
  if (!list) {
    if (anyTls) f.require("certificates", "a bind has \"tls\": true");
    return;
  }
  if (!f.array("certificates")) return;
  if (anyTls && list->items.empty()) {
    ctx.error(list->pos, f.at("certificates"), "must not be empty: a bind has \"tls\": true");
  }
  std::string path = f.pathOf("certificates");
  for (std::size_t i = 0; i < list->items.size(); ++i) {
    const JsonValue& item = list->items[i];
    Where where{path, i};
    const std::string* file = readString(ctx, item, where);
    if (!file) continue;
    if (file->empty()) {
      ctx.error(item.pos, where, "must not be empty");
    } else if (std::string error = readCertificatePath(ctx, *file); !error.empty()) {
      ctx.error(item.pos, where, std::move(error));
    } else {
      frontend.certificates.push_back(*file);
    }
  }
}

// Splits a map line into at most 3 whitespace-separated fields, ignoring a '#' comment.
std::size_t splitMapLine(std::string_view line, std::string_view (&fields)[3]) {
  line = line.substr(0, line.find('#'));
  std::size_t n = 0;
  std::size_t i = 0;
  auto isSpace = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (n < 3) {
    while (i < line.size() && isSpace(line[i])) ++i;
    if (i == line.size()) break;
    std::size_t start = i;
    while (i < line.size() && !isSpace(line[i])) ++i;
    fields[n++] = line.substr(start, i - start);
  }
  return n;
}

// Reads the "host value" lines of a host map; each problem names the map's file and line.
void loadHostMap(ParseContext& ctx, const JsonValue& at, const Where& where, RouteConfig& route) {
  std::string error;
  std::optional<std::string> text = ctx.read(route.value, error);
  if (!text) return ctx.error(at.pos, where, route.value + ": cannot read: " + error);
  std::unordered_map<std::string, int> firstLine;
  std::string_view rest = *text;
  for (int lineNo = 1; !rest.empty(); ++lineNo) {
    std::size_t eol = std::min(rest.find('\n'), rest.size());
    std::string_view fields[3];
    std::size_t n = splitMapLine(rest.substr(0, eol), fields);
    rest.remove_prefix(std::min(eol + 1, rest.size()));
    if (n == 0) continue;
    auto report = [&](const std::string& message) {
      ctx.error(at.pos, where, route.value + ":" + std::to_string(lineNo) + ": " + message);
    };
    if (n != 2) {
      report("expected 'host value'");
      continue;
    }
    std::string host = lowerCase(fields[0]);
    std::string backend = route.backendPrefix + std::string(fields[1]);
    if (!isValidHost(host)) {
      report("bad host '" + host + "'");
    } else if (!ctx.backendNames.count(backend)) {
      report("unknown backend '" + backend + "'");
    } else if (auto [it, inserted] = firstLine.emplace(host, lineNo); !inserted) {
      report("duplicate host '" + host + "' (first at line " + std::to_string(it->second) + ")");
    } else {
      route.mapEntries.emplace_back(std::move(host), std::string(fields[1]));
    }
  }
}

void parseHostMapRoute(const Fields& f, RouteConfig& route) {
  route.kind = RouteConfig::Kind::HostMap;
  if (const JsonValue* b = f.get("backend")) {
    f.ctx().error(b->pos, f.at("backend"), "not allowed with 'host_map' (use 'backend_prefix')");
  }
  const std::string* prefix = f.require("backend_prefix") ? f.string("backend_prefix") : nullptr;
  const std::string* file = f.string("host_map");
  if (!prefix || !file) return;
  if (file->empty())
    return f.ctx().error(f.get("host_map")->pos, f.at("host_map"), "must not be empty");
  route.backendPrefix = *prefix;
  route.value = *file;
  loadHostMap(f.ctx(), *f.get("host_map"), f.at("host_map"), route);
}

void parseBackendRoute(const Fields& f, std::string_view kind, RouteConfig& route) {
  ParseContext& ctx = f.ctx();
  if (const JsonValue* p = f.get("backend_prefix")) {
    ctx.error(p->pos, f.at("backend_prefix"), "only allowed with 'host_map'");
  }
  if (f.require("backend")) {
    if (const std::string* b = f.string("backend")) {
      ctx.requireBackend(*b, f.get("backend")->pos, f.at("backend"));
      route.backend = *b;
    }
  }
  const std::string* text = f.string(kind);
  if (!text) return;
  const JsonValue& at = *f.get(kind);
  if (kind == "path_prefix") {
    route.kind = RouteConfig::Kind::PathPrefix;
    route.value = *text;
    if (text->empty() || text->front() != '/') ctx.error(at.pos, f.at(kind), "must start with '/'");
  } else {
    route.kind = RouteConfig::Kind::Host;
    route.value = lowerCase(*text);
    if (!isValidHost(route.value)) {
      ctx.error(at.pos, f.at(kind), "expected a host name or \"*.domain\"");
    }
  }
}

void parseRoute(ParseContext& ctx, const JsonValue& v, std::string path, FrontendConfig& frontend) {
  Fields f(ctx, v, std::move(path),
           {"path_prefix", "host", "host_map", "backend", "backend_prefix"});
  if (!f.ok()) return;
  std::string_view kind;
  for (std::string_view k : {"path_prefix", "host", "host_map"}) {
    if (!f.get(k)) continue;
    if (!kind.empty()) {
      return ctx.error(f.get(k)->pos, f.at(k),
                       "a route takes only one of 'path_prefix', 'host', 'host_map'");
    }
    kind = k;
  }
  if (kind.empty()) {
    return ctx.error(v.pos, f.path(), "a route needs one of 'path_prefix', 'host', 'host_map'");
  }
  RouteConfig route;
  if (kind == "host_map") {
    parseHostMapRoute(f, route);
  } else {
    parseBackendRoute(f, kind, route);
  }
  frontend.routes.push_back(std::move(route));
}

void parseRoutes(const Fields& f, FrontendConfig& frontend) {
  const JsonValue* list = f.array("routes");
  if (!list) return;
  if (frontend.mode != Mode::Http) {
    return f.ctx().error(list->pos, f.at("routes"), "routes need mode http");
  }
  std::string path = f.pathOf("routes");
  for (std::size_t i = 0; i < list->items.size(); ++i) {
    parseRoute(f.ctx(), list->items[i], Where{path, i}.str(), frontend);
  }
}

void parseHttp2(const Fields& parent, Mode mode, Http2Config& out) {
  const JsonValue* v = parent.object("http2");
  if (!v) return;
  if (mode != Mode::Http) parent.ctx().error(v->pos, parent.at("http2"), "needs mode http");
  Fields f(parent.ctx(), *v, parent.pathOf("http2"),
           {"max_concurrent_streams", "max_header_list_size", "initial_window_size"});
  if (auto n = f.integer("max_concurrent_streams", 1, 10000))
    out.maxConcurrentStreams = static_cast<std::uint32_t>(*n);
  if (auto n = f.size("max_header_list_size", 1 << 20)) {
    if (*n < 1024)
      parent.ctx().error(f.get("max_header_list_size")->pos, f.at("max_header_list_size"),
                         "at least 1KB");
    out.maxHeaderListSize = static_cast<std::uint32_t>(*n);
  }
  if (auto n = f.size("initial_window_size", (std::uint64_t{1} << 31) - 1)) {
    if (*n < 1024)
      parent.ctx().error(f.get("initial_window_size")->pos, f.at("initial_window_size"),
                         "at least 1KB");
    out.initialWindowSize = static_cast<std::uint32_t>(*n);
  }
}

void parseAccessLog(const Fields& parent, Mode mode, std::optional<LogFormat>& out) {
  const JsonValue* v = parent.object("access_log");
  if (!v) return;
  if (mode != Mode::Http) parent.ctx().error(v->pos, parent.at("access_log"), "needs mode http");
  Fields f(parent.ctx(), *v, parent.pathOf("access_log"), {"format"});
  if (auto e =
          f.choice<LogFormat>("format", {{"text", LogFormat::Text}, {"json", LogFormat::Json}}))
    out = *e;
}

void parseFrontendTimeouts(const Fields& parent, FrontendTimeouts& out) {
  const JsonValue* v = parent.object("timeouts");
  if (!v) return;
  Fields f(parent.ctx(), *v, parent.pathOf("timeouts"), {"client", "http_request", "keep_alive"});
  if (auto d = f.duration("client", Millis(1))) out.client = *d;
  if (auto d = f.duration("http_request", Millis(1))) out.httpRequest = *d;
  if (auto d = f.duration("keep_alive", Millis(1))) out.keepAlive = *d;
}

FrontendConfig parseFrontend(ParseContext& ctx, const JsonValue& v, std::string path) {
  Fields f(ctx, v, std::move(path),
           {"name", "mode", "bind", "certificates", "routes", "default_backend", "timeouts",
            "max_request_body", "http2", "access_log"});
  FrontendConfig frontend;
  if (!f.ok()) return frontend;
  if (f.require("name")) {
    if (auto name = f.name("name")) frontend.name = std::move(*name);
  }
  if (auto m = f.choice<Mode>("mode", {{"http", Mode::Http}, {"tcp", Mode::Tcp}})) {
    frontend.mode = *m;
  }
  bool anyTls = parseBinds(f, frontend);
  parseCertificates(f, anyTls, frontend);
  parseRoutes(f, frontend);
  if (frontend.mode == Mode::Tcp) f.require("default_backend", "mode tcp");
  if (const std::string* b = f.string("default_backend")) {
    ctx.requireBackend(*b, f.get("default_backend")->pos, f.at("default_backend"));
    frontend.defaultBackend = *b;
  }
  parseFrontendTimeouts(f, frontend.timeouts);
  parseHttp2(f, frontend.mode, frontend.http2);
  parseAccessLog(f, frontend.mode, frontend.accessLogFormat);
  if (auto n = f.size("max_request_body", std::uint64_t{1} << 50)) {
    if (frontend.mode == Mode::Tcp)
      ctx.error(f.get("max_request_body")->pos, f.at("max_request_body"), "needs mode http");
    frontend.maxRequestBody = *n;
  }
  return frontend;
}

}  // namespace

void parseFrontends(ParseContext& ctx, const JsonValue& v, std::vector<FrontendConfig>& out) {
  parseNamedList(ctx, v, out, "frontends", "frontend", parseFrontend);
}

}  // namespace molt::common::config_detail
