// The runtime changes of frontends: cert.set, cert.del (runtime certificates), map.set, map.del
// (host-map entries).
#include <algorithm>
#include <limits>
#include <tuple>

#include "common/runtime_change_detail.hpp"

namespace molt::common::runtime_detail {
namespace {

std::string frontendPath(const Config& config, const FrontendConfig& frontend) {
  return "frontends[" + std::to_string(indexOf(config, frontend)) + "]";
}

bool hasTlsBind(const FrontendConfig& frontend) {
  return std::any_of(frontend.binds.begin(), frontend.binds.end(),
                     [](const BindConfig& bind) { return bind.tls; });
}

// The certificate's name and PEM text: the "pem" given, or the file "path" names (which is then
// the name unless one is given).
std::pair<std::string, std::string> certificateOf(const Request& request, const FileSource& files) {
  bool hasPem = request.has("pem");
  if (hasPem == request.has("path")) {
    refuse(hasPem ? "pem: give either pem or path, not both"
                  : "pem: missing (cert.set needs pem or path)");
  }
  std::string name;
  if (const std::string* given = request.optionalString("name")) {
    if (given->empty()) refuse("name: must not be empty");
    name = *given;
  }
  if (hasPem) {
    if (name.empty()) refuse("name: missing (cert.set with pem needs it)");
    if (request.string("pem").empty()) refuse("pem: must not be empty");
    return {name, request.string("pem")};
  }
  const std::string& path = request.string("path");
  if (path.empty() || path.front() != '/') {
    refuse("path: expected an absolute path (starting with '/')");
  }
  std::string error;
  std::optional<std::string> pem = files.read(path, error);
  if (!pem) refuse("path: " + path + ": cannot read: " + error);
  return {name.empty() ? path : name, std::move(*pem)};
}

// The host_map route the request's "route" index names, else the frontend's first.
RouteConfig& hostMapRoute(const Config& config, FrontendConfig& frontend, const Request& request) {
  std::optional<std::int64_t> index =
      request.optionalInteger("route", 0, std::numeric_limits<std::int64_t>::max());
  if (!index) {
    for (RouteConfig& route : frontend.routes) {
      if (route.kind == RouteConfig::Kind::HostMap) return route;
    }
    refuse("frontend: " + frontend.name + " has no host_map route");
  }
  std::string at = frontendPath(config, frontend) + ".routes[" + std::to_string(*index) + "]";
  if (static_cast<std::uint64_t>(*index) >= frontend.routes.size()) {
    refuse("route: " + frontend.name + " has no " + at + " (it has " +
           std::to_string(frontend.routes.size()) + " routes)");
  }
  RouteConfig& route = frontend.routes[static_cast<std::size_t>(*index)];
  if (route.kind != RouteConfig::Kind::HostMap) refuse("route: " + at + " is not a host_map route");
  return route;
}

// The request's host as the map file loader keeps it: lower-case, and valid.
std::string hostOf(const Request& request) {
  std::string host = config_detail::lowerCase(request.string("host"));
  if (!config_detail::isValidHost(host)) {
    refuse("host: bad host '" + host + "': expected a host name or \"*.domain\"");
  }
  return host;
}

// A map value is text, but `molt ctl map.set www a.example.com 1` sends the number 1: a
// non-negative integer is taken as its decimal text.
std::string valueOf(const Request& request) {
  const nlohmann::json& value = request.value("value");
  if (value.is_number_unsigned() || (value.is_number_integer() && value.get<std::int64_t>() >= 0)) {
    return std::to_string(value.get<std::uint64_t>());
  }
  return request.string("value");
}

using MapEntries = std::vector<std::pair<std::string, std::string>>;

MapEntries::iterator entryOf(RouteConfig& route, const std::string& host) {
  return std::find_if(route.mapEntries.begin(), route.mapEntries.end(),
                      [&](const auto& entry) { return entry.first == host; });
}

}  // namespace

void certSet(Config& config, nlohmann::json& change, const FileSource& files,
             const ChangeGate& gate) {
  Request request(change, {"frontend", "name", "pem", "path"});
  FrontendConfig& frontend = frontendNamed(config, request, "frontend");
  if (!hasTlsBind(frontend)) refuse("frontend: " + frontend.name + " has no TLS bind");
  std::string name, pem;
  std::tie(name, pem) = certificateOf(request, files);
  if (std::string error = validateCertificate(pem); !error.empty()) {
    refuse((request.has("pem") ? "pem: " : "path: " + request.string("path") + ": ") + error);
  }
  change.erase("path");
  change["name"] = name;
  change["pem"] = pem;
  pass(gate, change);
  auto& certificates = frontend.runtimeCertificates;
  auto it = std::find_if(certificates.begin(), certificates.end(),
                         [&](const RuntimeCertificate& c) { return c.name == name; });
  if (it != certificates.end()) {
    it->pem = std::move(pem);
  } else {
    certificates.push_back({std::move(name), std::move(pem)});
  }
}

void certDel(Config& config, nlohmann::json& change, const FileSource&, const ChangeGate& gate) {
  Request request(change, {"frontend", "name"});
  FrontendConfig& frontend = frontendNamed(config, request, "frontend");
  const std::string& name = request.string("name");
  auto& certificates = frontend.runtimeCertificates;
  auto it = std::find_if(certificates.begin(), certificates.end(),
                         [&](const RuntimeCertificate& c) { return c.name == name; });
  if (it != certificates.end()) {
    pass(gate, change);
    certificates.erase(it);
    return;
  }
  const auto& fromFile = frontend.certificates;
  if (auto f = std::find(fromFile.begin(), fromFile.end(), name); f != fromFile.end()) {
    refuse("name: " + name + " comes from the config file (" + frontendPath(config, frontend) +
           ".certificates[" + std::to_string(f - fromFile.begin()) +
           "]): edit the file and reload");
  }
  std::vector<std::string_view> names;
  for (const RuntimeCertificate& c : certificates) names.push_back(c.name);
  refuse("name: " + frontend.name + " has no runtime certificate named '" + name + "'" +
         didYouMean(name, names));
}

void mapSet(Config& config, nlohmann::json& change, const FileSource&, const ChangeGate& gate) {
  Request request(change, {"frontend", "host", "value", "route"});
  FrontendConfig& frontend = frontendNamed(config, request, "frontend");
  RouteConfig& route = hostMapRoute(config, frontend, request);
  std::string host = hostOf(request);
  std::string value = valueOf(request);
  if (value.empty() || value.find_first_of(" \t\r\n#") != std::string::npos) {
    refuse("value: must be one word without spaces or '#', as in a map file");
  }
  std::string backend = route.backendPrefix + value;
  if (!config.findBackend(backend)) {
    std::vector<std::string_view> names;
    for (const BackendConfig& b : config.backends) names.push_back(b.name);
    refuse("value: no backend named '" + backend + "'" + didYouMean(backend, names));
  }
  change["host"] = host;
  change["value"] = value;
  pass(gate, change);
  if (auto it = entryOf(route, host); it != route.mapEntries.end()) {
    it->second = std::move(value);
  } else {
    route.mapEntries.emplace_back(std::move(host), std::move(value));
  }
}

void mapDel(Config& config, nlohmann::json& change, const FileSource&, const ChangeGate& gate) {
  Request request(change, {"frontend", "host", "route"});
  FrontendConfig& frontend = frontendNamed(config, request, "frontend");
  RouteConfig& route = hostMapRoute(config, frontend, request);
  std::string host = hostOf(request);
  auto it = entryOf(route, host);
  if (it == route.mapEntries.end()) {
    refuse("host: no entry for '" + host + "' in the host map " + route.value);
  }
  change["host"] = host;
  pass(gate, change);
  route.mapEntries.erase(it);
}

}  // namespace molt::common::runtime_detail
