// Master: the runtime API's commands (see docs/api.md). Requests arrive from ApiServer.
#include <pwd.h>
#include <unistd.h>

#include "common/log.hpp"
#include "common/proc_memory.hpp"
#include "master/master.hpp"

namespace molt::master {
namespace {

nlohmann::json memoryOf(pid_t pid) {
  auto memory = common::readProcessMemory(pid);
  if (!memory) return nullptr;
  return {{"rss", memory->rss},
          {"pss", memory->pss},
          {"private", memory->privateBytes},
          {"shmem", memory->shmem}};
}

nlohmann::json failure(const std::string& error) {
  return {{"ok", false}, {"error", error}};
}

}  // namespace

void Master::setupApi(const common::Config& config) {
  const std::string& path = config.global.apiSocket;
  if (path == api_.path() && api_.listening()) return;
  if (path.empty()) return api_.close();
  uid_t allowed = geteuid();
  if (!config.global.user.empty())
    if (passwd* pw = getpwnam(config.global.user.c_str())) allowed = pw->pw_uid;
  if (std::string error = api_.listen(path, allowed); !error.empty()) {
    common::log::error("api: {}", error);
    return;
  }
  common::log::info("api: listening on {}", path);
}

// The boundary of the API: no exception from a command's handling reaches the loop (a request
// that slipped past validation is answered, logged, and the master goes on).
void Master::handleApi(const nlohmann::json& request, ApiReply reply) {
  try {
    dispatchApi(request, reply);
  } catch (const std::exception& e) {
    common::log::error("api: {} failed: {}", request.value("cmd", std::string("?")), e.what());
    if (reply) reply(failure(std::string("internal error: ") + e.what()));
  }
}

void Master::dispatchApi(const nlohmann::json& request, ApiReply& reply) {
  auto cmd = request.find("cmd");
  if (cmd == request.end() || !cmd->is_string())
    return reply(failure("cmd: missing, or not a string"));
  const std::string name = cmd->get<std::string>();
  if (name == "proc") return reply(procReport());
  if (name == "errors") return reply({{"ok", true}, {"errors", lastErrors_}});
  if (name == "cache") return reply(cacheReport());
  if (name == "servers") return reply(serversReport(request));
  if (name == "reload") return requestReload("api", std::move(reply));
  if (name == "upgrade") return requestUpgrade(std::move(reply));
  if (isChangeCommand(name)) return handleChange(request, std::move(reply));
  reply(failure("cmd: unknown command '" + name +
                "' (known: proc, reload, upgrade, errors, cache, servers, server.add, server.del, "
                "server.set, backend.add, backend.del, cert.set, cert.del, map.set, map.del)"));
}

// Every server of the serving generation (or of one backend): configuration, admin state,
// health, and connections from all its workers (the server-state zone's counts).
nlohmann::json Master::serversReport(const nlohmann::json& request) const {
  Generation* serving = current();
  if (!serving || !serving->serverState()) return failure("no generation is serving");
  std::string only;
  if (auto b = request.find("backend"); b != request.end()) {
    if (!b->is_string()) return failure("backend: expected a string");
    only = b->get<std::string>();
    if (!serving->config().findBackend(only))
      return failure("backend: unknown backend '" + only + "'");
  }
  const shm::ServerState& state = *serving->serverState();
  static constexpr const char* kAdmin[] = {"ready", "drain", "maint"};
  nlohmann::json servers = nlohmann::json::array();
  for (const auto& backend : serving->config().backends) {
    if (!only.empty() && backend.name != only) continue;
    for (const auto& server : backend.servers) {
      std::uint64_t i = server.stateRow;
      if (i >= state.serverCount()) continue;  // the zone had no room for it (logged)
      const shm::ServerLive& live = state.live(i);
      bool checked = server.check && !server.disabled;
      std::uint8_t admin = live.admin.load();
      servers.push_back({{"backend", backend.name},
                         {"name", server.name},
                         {"address", server.address.text()},
                         {"weight", state.weight(i)},
                         {"state", admin < 3 ? kAdmin[admin] : "?"},
                         {"check", !checked                  ? "none"
                                   : live.health.load() == 0 ? "up"
                                                             : "down"},
                         {"connections", live.connections.load()}});
    }
  }
  return {{"ok", true}, {"generation", serving->id()}, {"servers", servers}};
}

nlohmann::json Master::cacheReport() const {
  nlohmann::json report = {{"ok", true}};
  if (auto cache = tlsZones_->sessionCache()) {
    shm::SessionCacheStats s = cache->stats();
    report["session_cache"] = {{"size", cache->zone().size()},
                               {"capacity", s.capacity},
                               {"shards", s.shards},
                               {"entries", s.entries},
                               {"bytes", s.bytes},
                               {"hits", s.hits},
                               {"misses", s.misses},
                               {"stores", s.stores},
                               {"evictions", s.evictions},
                               {"expirations", s.expirations},
                               {"lock_recoveries", s.lockRecoveries},
                               {"lock_failures", s.lockFailures}};
  } else {
    report["session_cache"] = nullptr;
  }
  if (auto keys = tlsZones_->ticketKeys()) {
    auto snapshot = keys->snapshot();
    report["ticket_keys"] = {{"rotations", snapshot.rotations}, {"rotated_at", snapshot.rotatedAt}};
  } else {
    report["ticket_keys"] = nullptr;
  }
  return report;
}

nlohmann::json Master::procReport() const {
  uint64_t now = monotonicMs();
  nlohmann::json generations = nlohmann::json::array();
  for (const auto& g : generations_) {
    nlohmann::json workers = nlohmann::json::array();
    for (const auto& slot : g->slots()) {
      const WorkerProcess* w = slot.process.get();
      if (!w || w->phase() == WorkerPhase::Exited) continue;
      workers.push_back({{"slot", w->slot()},
                         {"pid", w->pid()},
                         {"phase", phaseName(w->phase())},
                         {"connections", w->connections()},
                         {"uptime_ms", now - w->startedMs()},
                         {"memory", memoryOf(w->pid())}});
    }
    nlohmann::json entry = {
        {"id", g->id()}, {"phase", phaseName(g->phase())}, {"workers", workers}};
    if (g->phase() == GenerationPhase::Draining) {
      entry["drain_started_ms_ago"] = now - g->drainStartedMs();
      entry["hard_stop_in_ms"] = g->hardStopAtMs() > now ? g->hardStopAtMs() - now : 0;
    }
    generations.push_back(std::move(entry));
  }
  nlohmann::json report = {{"ok", true},
                           {"master", {{"pid", getpid()}, {"memory", memoryOf(getpid())}}},
                           {"generations", generations}};
  if (zygote_.running())
    report["zygote"] = {{"pid", zygote_.pid()}, {"memory", memoryOf(zygote_.pid())}};
  return report;
}

}  // namespace molt::master
