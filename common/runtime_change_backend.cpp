// The runtime changes of backends and their servers: server.add, server.del, server.set,
// backend.add, backend.del.
#include <algorithm>
#include <iterator>
#include <limits>
#include <unordered_set>

#include "common/runtime_change_detail.hpp"

namespace molt::common::runtime_detail {
namespace {

// Linear: a backend of a million servers is scanned in a few milliseconds, which an API command
// may take, and no index has to be kept in step with the list.
std::size_t serverIndex(const BackendConfig& backend, const std::string& name) {
  for (std::size_t i = 0; i < backend.servers.size(); ++i) {
    if (backend.servers[i].name == name) return i;
  }
  refuse("server: " + backend.name + " has no server named '" + name + "'");
}

// One pass over the backend's servers however many a template adds; one server (the usual case)
// is compared directly, without hashing every name of a backend that may hold a million.
void refuseDuplicates(const BackendConfig& backend, const std::vector<ServerConfig>& added) {
  if (added.empty()) return;
  std::unordered_set<std::string_view> names;
  for (std::size_t i = 0; added.size() > 1 && i < added.size(); ++i) names.insert(added[i].name);
  for (const ServerConfig& s : backend.servers) {
    bool taken = added.size() > 1 ? names.count(s.name) > 0 : s.name == added.front().name;
    if (!taken) continue;
    std::string message =
        "server: " + backend.name + " already has a server named '" + s.name + "'";
    if (added.size() > 1) {
      message += " (the template makes " + added.front().name + " to " + added.back().name + ")";
    }
    refuse(message);
  }
}

// Where a frontend sends traffic to `name`, or "".
std::string referenceTo(const Config& config, const std::string& name) {
  for (std::size_t i = 0; i < config.frontends.size(); ++i) {
    const FrontendConfig& frontend = config.frontends[i];
    std::string at = "frontends[" + std::to_string(i) + "]";
    if (frontend.defaultBackend == name) return at + ".default_backend";
    for (std::size_t j = 0; j < frontend.routes.size(); ++j) {
      const RouteConfig& route = frontend.routes[j];
      std::string routeAt = at + ".routes[" + std::to_string(j) + "]";
      if (route.kind != RouteConfig::Kind::HostMap) {
        if (route.backend == name) return routeAt + ".backend";
        continue;
      }
      if (name.compare(0, route.backendPrefix.size(), route.backendPrefix) != 0) continue;
      std::string_view value = std::string_view(name).substr(route.backendPrefix.size());
      for (const auto& [host, entry] : route.mapEntries) {
        if (entry == value) return routeAt + ".host_map (host '" + host + "')";
      }
    }
  }
  return "";
}

}  // namespace

void serverAdd(Config& config, nlohmann::json& change, const FileSource& files,
               const ChangeGate& gate) {
  Request request(change, {"backend", "server"});
  BackendConfig& backend = backendNamed(config, request, "backend");
  const nlohmann::json& server = request.value("server");
  if (backend.deny != 0) {
    refuse("backend: " + backend.name + " answers by itself (deny " + std::to_string(backend.deny) +
           "): it takes no servers");
  }
  BackendConfig scratch;  // the backend's check, for the new servers' own to resolve against
  scratch.name = backend.name;
  scratch.check = backend.check;
  parseAsInFile(server, files, [&](config_detail::ParseContext& ctx, const JsonValue& v) {
    config_detail::parseServerEntry(ctx, v, "server", scratch);
  });
  refuseDuplicates(backend, scratch.servers);
  pass(gate, change);
  backend.servers.insert(backend.servers.end(), std::make_move_iterator(scratch.servers.begin()),
                         std::make_move_iterator(scratch.servers.end()));
}

// "timeout_ms" bounds the master's wait for the server's connections to drain before it deletes
// it; the config has nothing to do with it, and the journal does not keep it.
void serverDel(Config& config, nlohmann::json& change, const FileSource&, const ChangeGate& gate) {
  Request request(change, {"backend", "server", "timeout_ms"});
  BackendConfig& backend = backendNamed(config, request, "backend");
  std::size_t index = serverIndex(backend, request.string("server"));
  request.optionalInteger("timeout_ms", 0, std::numeric_limits<std::int64_t>::max());
  change.erase("timeout_ms");
  pass(gate, change);
  backend.servers.erase(backend.servers.begin() + static_cast<std::ptrdiff_t>(index));
}

void serverSet(Config& config, nlohmann::json& change, const FileSource&, const ChangeGate& gate) {
  Request request(change, {"backend", "server", "address", "weight", "state"});
  BackendConfig& backend = backendNamed(config, request, "backend");
  std::size_t index = serverIndex(backend, request.string("server"));
  if (!request.has("address") && !request.has("weight") && !request.has("state")) {
    refuse("server.set needs at least one of address, weight, state");
  }
  std::optional<SocketAddress> address;
  if (const std::string* text = request.optionalString("address")) {
    std::string error;
    address = parseAddress(*text, AddressUse::Connect, error);
    if (!address) refuse("address: " + error);
  }
  std::optional<std::int64_t> weight = request.optionalInteger("weight", 0, 256);
  std::optional<ServerAdmin> admin;
  if (const std::string* state = request.optionalString("state")) {
    if (*state == "ready") admin = ServerAdmin::Ready;
    if (*state == "drain") admin = ServerAdmin::Drain;
    if (*state == "maint") admin = ServerAdmin::Maint;
    if (!admin) {
      refuse("state: expected one of \"ready\", \"drain\", \"maint\"" +
             didYouMean(*state, {"ready", "drain", "maint"}));
    }
  }
  pass(gate, change);
  ServerConfig& server = backend.servers[index];
  if (address) server.address = *address;
  if (weight) server.weight = static_cast<unsigned>(*weight);
  if (admin) {
    server.admin = *admin;
    server.disabled = *admin == ServerAdmin::Maint;
  }
}

void backendAdd(Config& config, nlohmann::json& change, const FileSource& files,
                const ChangeGate& gate) {
  Request request(change, {"backend"});
  const nlohmann::json& object = request.value("backend");
  BackendConfig backend;
  parseAsInFile(object, files, [&](config_detail::ParseContext& ctx, const JsonValue& v) {
    backend = config_detail::parseBackend(ctx, v, "backend");
  });
  if (config.findBackend(backend.name)) {
    refuse("backend.name: a backend named '" + backend.name + "' already exists");
  }
  pass(gate, change);
  config.backends.push_back(std::move(backend));
}

void backendDel(Config& config, nlohmann::json& change, const FileSource&, const ChangeGate& gate) {
  Request request(change, {"backend"});
  BackendConfig& backend = backendNamed(config, request, "backend");
  if (std::string at = referenceTo(config, backend.name); !at.empty()) {
    refuse("backend: " + backend.name + " is in use by " + at);
  }
  pass(gate, change);
  config.backends.erase(config.backends.begin() + (&backend - config.backends.data()));
}

}  // namespace molt::common::runtime_detail
