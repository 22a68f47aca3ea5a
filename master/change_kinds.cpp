#include "master/change_kinds.hpp"

#include "master/journal.hpp"

namespace molt::master {
namespace {

constexpr std::uint64_t kNoRow = ~std::uint64_t{0};

std::string stringField(const nlohmann::json& change, const char* key) {
  auto it = change.find(key);
  return it != change.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string cmdOf(const nlohmann::json& change) {
  return stringField(change, "cmd");
}

// The same field in both: absent from both, or equal.
bool sameField(const nlohmann::json& a, const nlohmann::json& b, const char* key) {
  auto x = a.find(key);
  auto y = b.find(key);
  if (x == a.end() || y == b.end()) return x == a.end() && y == b.end();
  return *x == *y;
}

bool sameKey(const nlohmann::json& a, const nlohmann::json& b,
             std::initializer_list<const char*> keys) {
  for (const char* key : keys)
    if (!sameField(a, b, key)) return false;
  return true;
}

// ---- zone and workers ----

// Rows and name bytes a server.add / backend.add needs in the zone, from the request: a template
// counts its range, each name its digits.
struct Room {
  std::uint64_t rows = 0, nameBytes = 0;
};

Room roomNeeded(const nlohmann::json& request) {
  Room room;
  auto count = [&room](const nlohmann::json& server) {
    if (!server.is_object()) return;
    auto from = server.find("from"), to = server.find("to");
    auto name = server.find(server.contains("template") ? "template" : "name");
    std::uint64_t nameBytes =
        name != server.end() && name->is_string() ? name->get_ref<const std::string&>().size() : 0;
    if (!server.contains("template") || from == server.end() || to == server.end() ||
        !from->is_number_integer() || !to->is_number_integer() || from->get<std::int64_t>() < 0 ||
        *to < *from) {
      room.rows += 1;
      room.nameBytes += nameBytes;
      return;
    }
    for (auto i = from->get<std::uint64_t>(), last = to->get<std::uint64_t>(); i <= last; ++i) {
      room.rows += 1;
      room.nameBytes += nameBytes + std::to_string(i).size();
      if (room.rows > (std::uint64_t{1} << 32)) return;  // refused whatever the zone has
    }
  };
  if (cmdOf(request) == "server.add" && request.contains("server")) {
    count(request["server"]);
  } else if (auto b = request.find("backend"); b != request.end() && b->is_object()) {
    if (auto s = b->find("servers"); s != b->end() && s->is_array())
      for (const auto& server : *s) count(server);
  }
  return room;
}

// Refused before anything is applied: a change whose servers the zone cannot hold would reach
// the config and the journal but never the workers.
std::string refuseWithoutRoom(const Generation& serving, const nlohmann::json& request) {
  const shm::ServerState& zone = *serving.serverState();
  Room need = roomNeeded(request);
  if (need.rows > zone.spareRows())
    return "server: the generation has room for " + std::to_string(zone.spareRows()) +
           " more servers, " + std::to_string(need.rows) + " asked; a reload makes room";
  if (need.nameBytes > zone.spareNameBytes())
    return "server: the generation has room for " + std::to_string(zone.spareNameBytes()) +
           " more bytes of server names, " + std::to_string(need.nameBytes) +
           " asked; a reload makes room";
  return "";
}

common::ServerConfig* serverNamed(common::BackendConfig& backend, const std::string& name) {
  for (auto& s : backend.servers)
    if (s.name == name) return &s;
  return nullptr;
}

// A server the change added or changed: its row (appended when new), admin state and weight
// in the zone, its check, and (unless configured disabled) its description for the workers.
void publishServer(Generation& serving, const common::BackendConfig& backend,
                   common::ServerConfig& s, Publication& out) {
  shm::ServerState& zone = *serving.serverState();
  if (s.stateRow == kNoRow) {
    auto row = zone.appendServer(s.name, s.address, s.weight, s.check, s.admin, out.zoneError);
    if (!row) return;
    s.stateRow = *row;
  }
  shm::ServerLive& live = zone.live(s.stateRow);
  live.admin.store(static_cast<std::uint8_t>(s.admin));
  live.weightPlusOne.store(static_cast<std::uint16_t>(s.weight + 1));
  out.checksChanged = out.checksChanged || s.check;
  serving.trackCheck(backend.name, s);
  if (!s.disabled)
    out.ops.push_back(
        control::ServerPut{backend.name, s.name, s.address.text(), s.weight, s.stateRow});
}

common::BackendConfig& backendOf(Generation& serving, const nlohmann::json& change) {
  return *serving.mutableConfig().findBackend(change.at("backend").get<std::string>());
}

// server.add: every server of the backend without a row is new (a template adds several).
void publishServerAdd(Generation& serving, const nlohmann::json& change, const RemovedRows&,
                      Publication& out) {
  common::BackendConfig& backend = backendOf(serving, change);
  for (auto& s : backend.servers)
    if (s.stateRow == kNoRow) publishServer(serving, backend, s, out);
}

void publishServerSet(Generation& serving, const nlohmann::json& change, const RemovedRows&,
                      Publication& out) {
  common::BackendConfig& backend = backendOf(serving, change);
  if (common::ServerConfig* s = serverNamed(backend, stringField(change, "server")))
    publishServer(serving, backend, *s, out);
}

RemovedRows removedServer(const common::Config& config, const nlohmann::json& request) {
  RemovedRows rows;
  if (const common::BackendConfig* b = config.findBackend(stringField(request, "backend")))
    for (const auto& s : b->servers)
      if (s.name == stringField(request, "server")) rows.emplace_back(s.name, s.stateRow);
  return rows;
}

RemovedRows removedBackend(const common::Config& config, const nlohmann::json& request) {
  RemovedRows rows;
  if (const common::BackendConfig* b = config.findBackend(stringField(request, "backend")))
    for (const auto& s : b->servers) rows.emplace_back(s.name, s.stateRow);
  return rows;
}

// Removed rows go to maintenance (workers holding the server send it nothing new) and
// unchecked.
void retireRows(Generation& serving, const std::string& backend, const RemovedRows& removed,
                Publication& out) {
  for (const auto& [name, row] : removed) {
    serving.serverState()->live(row).admin.store(
        static_cast<std::uint8_t>(shm::ServerAdmin::Maint));
    serving.untrackCheck(backend, name);
    out.checksChanged = true;
  }
}

void publishServerDel(Generation& serving, const nlohmann::json& change, const RemovedRows& removed,
                      Publication& out) {
  std::string backend = stringField(change, "backend");
  retireRows(serving, backend, removed, out);
  for (const auto& [name, row] : removed) out.ops.push_back(control::ServerRemove{backend, name});
}

// server.del drains first: the server gets no new traffic at once, and is deleted when its
// connections (from every worker) reach zero.
std::uint32_t serverConnections(Generation& serving, const nlohmann::json& request) {
  common::BackendConfig* backend =
      serving.mutableConfig().findBackend(stringField(request, "backend"));
  common::ServerConfig* server =
      backend ? serverNamed(*backend, stringField(request, "server")) : nullptr;
  if (!server) return 0;  // the change's own validation names what is wrong
  shm::ServerState& zone = *serving.serverState();
  std::uint32_t connections = zone.connections(server->stateRow).load();
  if (connections > 0)
    zone.live(server->stateRow).admin.store(static_cast<std::uint8_t>(shm::ServerAdmin::Drain));
  return connections;
}

// Workers parse the backend object with the config's own parser, as the master did; its servers
// get consecutive rows from `first`, appended here in the same order.
void publishBackendAdd(Generation& serving, const nlohmann::json& change, const RemovedRows&,
                       Publication& out) {
  std::uint64_t first = serving.serverState()->serverCount();
  common::BackendConfig& backend = serving.mutableConfig().backends.back();
  Publication rows;
  for (auto& s : backend.servers) publishServer(serving, backend, s, rows);
  out.checksChanged = rows.checksChanged;
  out.zoneError = rows.zoneError;
  out.ops.push_back(control::BackendAdd{change.at("backend"), first});
}

void publishBackendDel(Generation& serving, const nlohmann::json& change,
                       const RemovedRows& removed, Publication& out) {
  std::string backend = stringField(change, "backend");
  retireRows(serving, backend, removed, out);
  out.ops.push_back(control::BackendDel{backend});
}

// map.* names the route by index (default: the frontend's first host_map route) and the backend
// by its full name, as the worker's router holds them.
const common::FrontendConfig& frontendOf(const Generation& serving, const nlohmann::json& change) {
  for (const auto& f : serving.config().frontends)
    if (f.name == stringField(change, "frontend")) return f;
  throw std::logic_error("map change for a frontend the change did not check");
}

std::size_t routeOf(const common::FrontendConfig& f, const nlohmann::json& change) {
  if (auto r = change.find("route"); r != change.end() && r->is_number_unsigned())
    return r->get<std::size_t>();
  std::size_t route = 0;
  while (route < f.routes.size() && f.routes[route].kind != common::RouteConfig::Kind::HostMap)
    ++route;
  return route;
}

void publishMapSet(Generation& serving, const nlohmann::json& change, const RemovedRows&,
                   Publication& out) {
  const common::FrontendConfig& f = frontendOf(serving, change);
  std::size_t route = routeOf(f, change);
  out.ops.push_back(control::MapSet{f.name, route, stringField(change, "host"),
                                    f.routes[route].backendPrefix + stringField(change, "value")});
}

void publishMapDel(Generation& serving, const nlohmann::json& change, const RemovedRows&,
                   Publication& out) {
  const common::FrontendConfig& f = frontendOf(serving, change);
  out.ops.push_back(control::MapDel{f.name, routeOf(f, change), stringField(change, "host")});
}

std::string certName(const nlohmann::json& change) {
  return change.contains("name") ? stringField(change, "name") : stringField(change, "path");
}

void publishCertSet(Generation&, const nlohmann::json& change, const RemovedRows&,
                    Publication& out) {
  out.ops.push_back(control::CertSet{stringField(change, "frontend"), certName(change),
                                     stringField(change, "pem")});
}

void publishCertDel(Generation&, const nlohmann::json& change, const RemovedRows&,
                    Publication& out) {
  out.ops.push_back(control::CertDel{stringField(change, "frontend"), certName(change)});
}

// ---- journal folds ----

// The name of the backend an entry adds or removes, or "".
std::string backendDefined(const nlohmann::json& change) {
  std::string cmd = cmdOf(change);
  if (cmd == "backend.del") return stringField(change, "backend");
  auto it = change.find("backend");
  if (cmd != "backend.add" || it == change.end() || !it->is_object()) return "";
  return stringField(*it, "name");
}

// A server.add of the one server (not a template) `server` to `backend`.
bool addsServer(const nlohmann::json& change, const std::string& backend,
                const std::string& server) {
  auto object = change.find("server");
  return cmdOf(change) == "server.add" && stringField(change, "backend") == backend &&
         object != change.end() && object->is_object() && !object->contains("template") &&
         stringField(*object, "name") == server;
}

// A server.del of a server a journalled server.add made drops both (and the server.set entries
// between), unless the backend was redefined between them.
bool foldServerDel(Journal& journal, const nlohmann::json& del) {
  const auto& entries = journal.entries();
  std::string backend = stringField(del, "backend");
  std::string server = stringField(del, "server");
  std::size_t added = entries.size();
  for (std::size_t i = entries.size(); i-- > 0;) {
    if (addsServer(entries[i], backend, server)) {
      added = i;
      break;
    }
  }
  if (added == entries.size()) return false;
  for (std::size_t i = added + 1; i < entries.size(); ++i)
    if (backendDefined(entries[i]) == backend) return false;
  journal.dropWhere([&](std::size_t i, const nlohmann::json& e) {
    return i == added ||
           (i > added && cmdOf(e) == "server.set" && stringField(e, "backend") == backend &&
            stringField(e, "server") == server);
  });
  return true;
}

// backend.del after a journalled backend.add drops both and what came between for it, unless a
// map.* entry came between them (it may point at the backend).
bool foldBackendDel(Journal& journal, const nlohmann::json& del) {
  const auto& entries = journal.entries();
  std::string backend = stringField(del, "backend");
  std::size_t added = entries.size();
  for (std::size_t i = entries.size(); i-- > 0 && added == entries.size();)
    if (cmdOf(entries[i]) == "backend.add" && backendDefined(entries[i]) == backend) added = i;
  if (added == entries.size()) return false;
  for (std::size_t i = added + 1; i < entries.size(); ++i)
    if (cmdOf(entries[i]).rfind("map.", 0) == 0) return false;
  journal.dropWhere([&](std::size_t i, const nlohmann::json& e) {
    return i == added || (i > added && stringField(e, "backend") == backend);
  });
  return true;
}

// A cert.set replaces an earlier one of the same frontend and name; a cert.del drops them, and
// itself too when there was one (a runtime certificate exists only through its cert.set).
bool foldCertSet(Journal& journal, const nlohmann::json& change) {
  journal.dropWhere([&](std::size_t, const nlohmann::json& e) {
    return cmdOf(e) == "cert.set" && sameKey(e, change, {"frontend", "name"});
  });
  return false;
}

bool foldCertDel(Journal& journal, const nlohmann::json& change) {
  return journal.dropWhere([&](std::size_t, const nlohmann::json& e) {
    return cmdOf(e) == "cert.set" && sameKey(e, change, {"frontend", "name"});
  }) > 0;
}

// A map.set replaces an earlier one of the same frontend, route and host, but only since the
// last map.del of the host: without the set before it, that del could meet no entry on replay
// (when the map file lacks the host) and be reported as a conflict.
bool foldMapSet(Journal& journal, const nlohmann::json& change) {
  const auto& entries = journal.entries();
  auto sameMapKey = [&](const nlohmann::json& e) {
    return sameKey(e, change, {"frontend", "route", "host"});
  };
  std::size_t since = 0;
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (cmdOf(entries[i]) == "map.del" && sameMapKey(entries[i])) since = i + 1;
  journal.dropWhere([&](std::size_t i, const nlohmann::json& e) {
    return i >= since && cmdOf(e) == "map.set" && sameMapKey(e);
  });
  return false;
}

}  // namespace

const std::vector<ChangeKind>& changeKinds() {
  static const std::vector<ChangeKind> kinds = {
      {"server.add", refuseWithoutRoom, nullptr, nullptr, publishServerAdd, nullptr},
      {"server.del", nullptr, serverConnections, removedServer, publishServerDel, foldServerDel},
      {"server.set", nullptr, nullptr, nullptr, publishServerSet, nullptr},
      {"backend.add", refuseWithoutRoom, nullptr, nullptr, publishBackendAdd, nullptr},
      {"backend.del", nullptr, nullptr, removedBackend, publishBackendDel, foldBackendDel},
      {"cert.set", nullptr, nullptr, nullptr, publishCertSet, foldCertSet},
      {"cert.del", nullptr, nullptr, nullptr, publishCertDel, foldCertDel},
      {"map.set", nullptr, nullptr, nullptr, publishMapSet, foldMapSet},
      {"map.del", nullptr, nullptr, nullptr, publishMapDel, nullptr},
  };
  return kinds;
}

const ChangeKind* findChangeKind(std::string_view cmd) {
  for (const ChangeKind& kind : changeKinds())
    if (kind.cmd == cmd) return &kind;
  return nullptr;
}

}  // namespace molt::master
