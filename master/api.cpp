#include "master/api.hpp"

#include <pwd.h>
#include <unistd.h>

#include "common/log.hpp"
#include "common/proc_memory.hpp"
#include "master/change_kinds.hpp"

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

void configureApiSocket(ApiServer& api, const common::Config& config) {
  const std::string& path = config.global.apiSocket;
  if (path.empty()) return api.close();
  // Root and the master's own uid always; the workers' user only when listed (a compromised
  // worker must not reach the API).
  std::vector<uid_t> allowed;
  for (const auto& name : config.global.apiUsers) {
    if (passwd* pw = getpwnam(name.c_str()))
      allowed.push_back(pw->pw_uid);
    else
      common::log::error("api: global.api_users: user '{}' does not resolve; not admitted", name);
  }
  if (path == api.path() && api.listening()) return api.setAllowedUids(std::move(allowed));
  if (std::string error = api.listen(path, std::move(allowed)); !error.empty()) {
    common::log::error("api: {}", error);
    return;
  }
  common::log::info("api: listening on {}", path);
}

// The boundary of the API: no exception from a command's handling reaches the loop (a request
// that slipped past validation is answered, logged, and the master goes on).
void ApiCommands::handle(const nlohmann::json& request, const ApiPeer& peer, ApiReply reply) {
  try {
    dispatch(request, peer, reply);
  } catch (const std::exception& e) {
    common::log::error("api: {} failed: {}", request.value("cmd", std::string("?")), e.what());
    if (reply) reply(failure(std::string("internal error: ") + e.what()));
  }
}

void ApiCommands::dispatch(const nlohmann::json& request, const ApiPeer& peer, ApiReply& reply) {
  auto cmd = request.find("cmd");
  if (cmd == request.end() || !cmd->is_string())
    return reply(failure("cmd: missing, or not a string"));
  const std::string name = cmd->get<std::string>();
  if (name == "proc") return reply(procReport());
  if (name == "errors") return reply({{"ok", true}, {"errors", reloader_.lastErrors()}});
  if (name == "cache") return reply(cacheReport());
  if (name == "rotate-tickets") return tlsZones_.rotateNow(std::move(reply));
  if (name == "servers") return reply(serversReport(request));
  if (name == "status") return reply(metrics_.status());
  if (name == "reload") return reloader_.request("api", std::move(reply));
  // `molt ctl upgrade` re-execs even an unchanged binary.
  if (name == "upgrade")
    return reloader_.request("api upgrade", std::move(reply), UpgradeMode::Force);
  if (findChangeKind(name))
    return changes_.handle(request, peer,
                           std::move(reply).observed([this, name](const nlohmann::json& r) {
                             metrics_.changeAnswered(name, r.value("ok", false));
                           }));
  std::string known = "proc, status, reload, upgrade, errors, cache, rotate-tickets, servers";
  for (const ChangeKind& kind : changeKinds()) known += ", " + std::string(kind.cmd);
  reply(failure("cmd: unknown command '" + name + "' (known: " + known + ")"));
}

// Every server of the serving generation (or of one backend): configuration, admin state,
// health, and connections from all its workers (the server-state zone's counts).
nlohmann::json ApiCommands::serversReport(const nlohmann::json& request) const {
  Generation* serving = supervisor_.current();
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
                         {"connections", state.connections(i).load()}});
    }
  }
  return {{"ok", true}, {"generation", serving->id()}, {"servers", servers}};
}

nlohmann::json ApiCommands::cacheReport() const {
  nlohmann::json report = {{"ok", true}};
  if (auto cache = tlsZones_.sessionCache()) {
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
                               {"lock_failures", s.lockFailures},
                               {"wipes", s.wipes}};
  } else {
    report["session_cache"] = nullptr;
  }
  if (auto keys = tlsZones_.ticketKeys()) {
    auto snapshot = keys->snapshot();
    report["ticket_keys"] = {{"rotations", snapshot.rotations}, {"rotated_at", snapshot.rotatedAt}};
  } else {
    report["ticket_keys"] = nullptr;
  }
  report["fleet"] = tlsZones_.fleetReport();
  if (report["fleet"].is_object()) report["fleet"]["workers"] = fleetWorkersReport();
  return report;
}

// The workers' side of the fleet tier, summed over the live workers' stats zones. Numbers a
// worker wrote: only added up and shown, each bounded so that a scribbling worker cannot make the
// sum wrap.
nlohmann::json ApiCommands::fleetWorkersReport() const {
  constexpr std::uint64_t kBound = std::uint64_t{1} << 48;
  auto read = [&](const shm::Counter& c) {
    return std::min(c.load(std::memory_order_relaxed), kBound);
  };
  std::uint64_t lookups = 0, hits = 0, timeouts = 0, refused = 0, stores = 0, up = 0, workers = 0;
  for (const auto& g : supervisor_.generations())
    for (const auto& slot : g->slots()) {
      if (!slot.process || !slot.process->counters()) continue;
      const shm::WorkerRow& row = slot.process->counters()->zone().worker();
      lookups += read(row.fleetLookups);
      hits += read(row.fleetHits);
      timeouts += read(row.fleetTimeouts);
      refused += read(row.fleetRefused);
      stores += read(row.fleetStores);
      if (g.get() == supervisor_.current()) {
        ++workers;
        up += read(row.fleetUp) == 1 ? 1 : 0;
      }
    }
  return {{"serving", workers},   {"connected", up},    {"lookups", lookups}, {"hits", hits},
          {"timeouts", timeouts}, {"refused", refused}, {"stores", stores}};
}

nlohmann::json ApiCommands::procReport() const {
  uint64_t now = monotonicMs();
  nlohmann::json generations = nlohmann::json::array();
  for (const auto& g : supervisor_.generations()) {
    nlohmann::json workers = nlohmann::json::array();
    for (const auto& slot : g->slots()) {
      const WorkerProcess* w = slot.process.get();
      if (!w || w->phase() == WorkerPhase::Exited) continue;
      workers.push_back({{"slot", w->slot()},
                         {"pid", w->pid()},
                         {"phase", phaseName(w->phase())},
                         {"connections", w->connections()},
                         {"parked", w->parked()},
                         {"migrated_out", w->migrated()},
                         {"migrated_in", w->adopted()},
                         {"staying_tls", w->staying()},
                         {"http2_connections", w->http2Connections()},
                         {"http2_streams", w->http2Streams()},
                         {"uptime_ms", now - w->startedMs()},
                         {"memory", memoryOf(w->pid())}});
    }
    nlohmann::json entry = {
        {"id", g->id()}, {"phase", phaseName(g->phase())}, {"workers", workers}};
    // Slots whose worker keeps failing to start (spawn refused, or dead soon after its start).
    nlohmann::json failing = nlohmann::json::array();
    for (const auto& slot : g->slots())
      if (slot.failures > 0)
        failing.push_back({{"slot", &slot - g->slots().data()},
                           {"failures", slot.failures},
                           {"last", slot.lastFailure}});
    if (!failing.empty()) entry["failing"] = std::move(failing);
    if (g->phase() == GenerationPhase::Draining) {
      entry["drain_started_ms_ago"] = now - g->drainStartedMs();
      entry["hard_stop_in_ms"] = g->hardStopAtMs() > now ? g->hardStopAtMs() - now : 0;
    }
    generations.push_back(std::move(entry));
  }
  nlohmann::json report = {{"ok", true},
                           {"master", {{"pid", getpid()}, {"memory", memoryOf(getpid())}}},
                           {"generations", generations},
                           {"migration",
                            {{"moved", supervisor_.migrator().moved()},
                             {"refused", supervisor_.migrator().refused()},
                             {"in_flight", supervisor_.migrator().inFlight()}}}};
  if (const Zygote& zygote = supervisor_.zygote(); zygote.running())
    report["zygote"] = {{"pid", zygote.pid()}, {"memory", memoryOf(zygote.pid())}};
  return report;
}

}  // namespace molt::master
