// Master: the runtime API's change commands (server.*, backend.*, cert.*, map.*; docs/api.md).
//
// A change is validated and applied to the serving generation's config (common/runtime_change),
// journalled (master/journal: replayed on every reload and binary upgrade, saved to
// global.state_file), published to the generation's server-state zone (rows for new servers,
// admin state, weight) and sent to each of its workers as resolved "change" messages; the
// request is answered once every worker applied it. Draining generations never get changes.
#include <algorithm>

#include "common/log.hpp"
#include "common/runtime_change.hpp"
#include "master/master.hpp"

namespace molt::master {
namespace {

nlohmann::json failure(const std::string& error) {
  return {{"ok", false}, {"error", error}};
}

common::ServerConfig* serverNamed(common::BackendConfig& backend, const std::string& name) {
  for (auto& s : backend.servers)
    if (s.name == name) return &s;
  return nullptr;
}

// Rows a server.add / backend.add needs, from the request (templates count their range).
std::uint64_t rowsNeeded(const nlohmann::json& request) {
  auto count = [](const nlohmann::json& server) -> std::uint64_t {
    if (!server.is_object()) return 1;
    auto from = server.find("from"), to = server.find("to");
    if (server.contains("template") && from != server.end() && to != server.end() &&
        from->is_number_integer() && to->is_number_integer() && *to >= *from)
      return to->get<std::uint64_t>() - from->get<std::uint64_t>() + 1;
    return 1;
  };
  if (request.value("cmd", "") == "server.add" && request.contains("server"))
    return count(request["server"]);
  std::uint64_t n = 0;
  if (auto b = request.find("backend"); b != request.end() && b->is_object())
    if (auto s = b->find("servers"); s != b->end() && s->is_array())
      for (const auto& server : *s) n += count(server);
  return n;
}

nlohmann::json serverPut(const std::string& backend, const common::ServerConfig& s) {
  return {{"type", "change"},   {"op", "server.put"},          {"backend", backend},
          {"server", s.name},   {"address", s.address.text()}, {"weight", s.weight},
          {"index", s.stateRow}};
}

}  // namespace

bool isChangeCommand(const std::string& cmd) {
  return common::isRuntimeChange(cmd);
}

void Master::handleChange(const nlohmann::json& request, ApiReply reply) {
  // A reload under way builds its generation from the journal as it was: apply the change once
  // that generation serves, so it gets the change too.
  if (reloading_) {
    queuedChanges_.push_back({request, std::move(reply)});
    return;
  }
  Generation* serving = current();
  if (!serving || !serving->serverState()) return reply(failure("no generation is serving"));
  const std::string cmd = request["cmd"].get<std::string>();
  if (cmd == "server.del") return deleteServer(request, std::move(reply), uv_now(&loop_));
  applyChange(*serving, request, std::move(reply));
}

// server.del drains first: the server gets no new traffic at once, and is deleted when its
// connections (from every worker) reach zero; past `timeout_ms` (default 10 s; 0: do not wait)
// the deletion is refused, the server left draining.
void Master::deleteServer(const nlohmann::json& request, ApiReply reply, uint64_t startedMs) {
  Generation* serving = current();
  if (reloading_ || !serving || !serving->serverState()) {
    if (reloading_) return queuedChanges_.push_back({request, std::move(reply)});
    return reply(failure("no generation is serving"));
  }
  auto b = request.find("backend"), s = request.find("server");
  if (b == request.end() || !b->is_string()) return reply(failure("backend: expected a string"));
  if (s == request.end() || !s->is_string()) return reply(failure("server: expected a string"));
  common::BackendConfig* backend = serving->mutableConfig().findBackend(b->get<std::string>());
  common::ServerConfig* server = backend ? serverNamed(*backend, *s) : nullptr;
  if (!server) return applyChange(*serving, request, std::move(reply));  // its error names it
  shm::ServerLive& live = serving->serverState()->live(server->stateRow);
  std::uint32_t connections = live.connections.load();
  if (connections == 0) return applyChange(*serving, request, std::move(reply));
  live.admin.store(static_cast<std::uint8_t>(shm::ServerAdmin::Drain));
  uint64_t timeout = 10'000;
  if (auto t = request.find("timeout_ms"); t != request.end()) {
    if (!t->is_number_unsigned()) return reply(failure("timeout_ms: expected an integer >= 0"));
    timeout = t->get<uint64_t>();
  }
  uint64_t now = uv_now(&loop_);
  if (now - startedMs >= timeout)
    return reply(failure("server: " + backend->name + "/" + server->name + " still has " +
                         std::to_string(connections) + " connection(s) after " +
                         std::to_string(timeout) +
                         " ms; left draining (no new traffic): retry, or raise timeout_ms"));
  // Poll again shortly (the counts live in the zone, written by the workers).
  auto* timer = new uv_timer_t;
  uv_timer_init(&loop_, timer);
  timer->data = new PendingDelete{this, request, std::move(reply), startedMs};
  uv_timer_start(
      timer,
      [](uv_timer_t* t) {
        auto* pending = static_cast<PendingDelete*>(t->data);
        pending->master->deleteServer(pending->request, std::move(pending->reply),
                                      pending->startedMs);
        delete pending;
        uv_close(reinterpret_cast<uv_handle_t*>(t),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      },
      50, 0);
}

namespace {

// What a change applied to the config means for the zone, the checks and the workers.
struct Publication {
  std::vector<nlohmann::json> messages;  // for each worker, in order
  bool checksChanged = false;            // the checked set must be recomputed
  std::string zoneError;                 // the zone had no room (logged)
};

using RemovedRows = std::vector<std::pair<std::string, std::uint64_t>>;  // server name, row

// A server the change added or changed: its row (appended when new), admin state and weight
// in the zone, its check, and (unless in maintenance) its description for the workers.
void publishServer(Generation& serving, const common::BackendConfig& backend,
                   common::ServerConfig& s, Publication& out) {
  shm::ServerState& zone = *serving.serverState();
  if (s.stateRow == ~std::uint64_t{0}) {
    auto row = zone.appendServer(s.name, s.address, s.weight, s.check, s.admin, out.zoneError);
    if (!row) return;
    s.stateRow = *row;
  }
  shm::ServerLive& live = zone.live(s.stateRow);
  live.admin.store(static_cast<std::uint8_t>(s.admin));
  live.weightPlusOne.store(static_cast<std::uint16_t>(s.weight + 1));
  out.checksChanged = out.checksChanged || s.check;
  serving.trackCheck(backend.name, s);
  if (!s.disabled) out.messages.push_back(serverPut(backend.name, s));
}

void publishRemoval(Generation& serving, const std::string& cmd, const std::string& backend,
                    const RemovedRows& removed, Publication& out) {
  for (const auto& [name, row] : removed) {
    serving.serverState()->live(row).admin.store(
        static_cast<std::uint8_t>(shm::ServerAdmin::Maint));
    serving.untrackCheck(backend, name);
    out.checksChanged = true;
    if (cmd == "server.del")
      out.messages.push_back(
          {{"type", "change"}, {"op", "server.remove"}, {"backend", backend}, {"server", name}});
  }
  if (cmd == "backend.del")
    out.messages.push_back({{"type", "change"}, {"op", "backend.del"}, {"backend", backend}});
}

// Workers parse the backend object with the config's own parser, as the master did; its servers
// get consecutive rows from `first`, appended here in the same order.
void publishBackendAdd(Generation& serving, const nlohmann::json& change,
                       common::BackendConfig& backend, Publication& out) {
  std::uint64_t first = serving.serverState()->serverCount();
  Publication rows;
  for (auto& s : backend.servers) publishServer(serving, backend, s, rows);
  out.checksChanged = rows.checksChanged;
  out.zoneError = rows.zoneError;
  out.messages.push_back({{"type", "change"},
                          {"op", "backend.add"},
                          {"backend", change["backend"]},
                          {"first", first}});
}

// map.* names the route by index (default: the frontend's first host_map route) and the backend
// by its full name, as the worker's router holds them.
nlohmann::json mapMessage(const common::Config& config, const std::string& cmd,
                          const nlohmann::json& change) {
  const std::string frontend = change["frontend"].get<std::string>();
  const common::FrontendConfig* f = nullptr;
  for (const auto& candidate : config.frontends)
    if (candidate.name == frontend) f = &candidate;
  std::size_t route = 0;
  if (auto r = change.find("route"); r != change.end() && r->is_number_unsigned()) {
    route = r->get<std::size_t>();
  } else {
    while (route < f->routes.size() && f->routes[route].kind != common::RouteConfig::Kind::HostMap)
      ++route;
  }
  nlohmann::json message = {{"type", "change"},
                            {"op", cmd},
                            {"frontend", frontend},
                            {"route", route},
                            {"host", change["host"]}};
  if (cmd == "map.set")
    message["backend"] = f->routes[route].backendPrefix + change["value"].get<std::string>();
  return message;
}

}  // namespace

void Master::applyChange(Generation& serving, const nlohmann::json& request, ApiReply reply) {
  const std::string cmd = request["cmd"].get<std::string>();
  common::Config& config = serving.mutableConfig();
  shm::ServerState& zone = *serving.serverState();
  if (cmd == "server.add" || cmd == "backend.add") {
    if (std::uint64_t need = rowsNeeded(request); need > zone.spareRows())
      return reply(failure("server: the generation has room for " +
                           std::to_string(zone.spareRows()) + " more servers, " +
                           std::to_string(need) + " asked; a reload makes room"));
  }
  // What a deletion removes, found before the config forgets it.
  RemovedRows removed;
  if (cmd == "server.del" || cmd == "backend.del") {
    auto b = request.find("backend");
    if (b != request.end() && b->is_string())
      if (common::BackendConfig* backend = config.findBackend(b->get<std::string>()))
        for (const auto& s : backend->servers)
          if (cmd == "backend.del" || s.name == request.value("server", ""))
            removed.emplace_back(s.name, s.stateRow);
  }
  nlohmann::json change = request;
  // An address given as a host name is resolved here, synchronously, as the file's are: the loop
  // waits for the resolver (give addresses as literals to avoid it).
  std::string error = common::applyRuntimeChange(config, change, common::FileSource::disk());
  if (!error.empty()) return reply(failure(error));

  Publication out;
  if (cmd == "server.add" || cmd == "server.set") {
    common::BackendConfig& backend = *config.findBackend(change["backend"].get<std::string>());
    for (auto& s : backend.servers)
      if (s.stateRow == ~std::uint64_t{0} ||
          (cmd == "server.set" && s.name == change.value("server", "")))
        publishServer(serving, backend, s, out);
  } else if (cmd == "server.del" || cmd == "backend.del") {
    publishRemoval(serving, cmd, change["backend"].get<std::string>(), removed, out);
  } else if (cmd == "backend.add") {
    publishBackendAdd(serving, change, config.backends.back(), out);
  } else if (cmd == "map.set" || cmd == "map.del") {
    out.messages.push_back(mapMessage(config, cmd, change));
  } else if (cmd == "cert.set" || cmd == "cert.del") {
    nlohmann::json message = {{"type", "change"},
                              {"op", cmd},
                              {"frontend", change["frontend"]},
                              {"name", change.value("name", change.value("path", ""))}};
    if (cmd == "cert.set") message["pem"] = change["pem"];
    out.messages.push_back(std::move(message));
  }
  if (!out.zoneError.empty()) common::log::error("runtime change {}: {}", cmd, out.zoneError);
  if (out.checksChanged) checker_->setTargets(HealthChecker::targetsOf(config));

  journal_.append(change);
  saveJournal();
  common::log::info("api: applied {}", common::describeRuntimeChange(change));
  broadcastChange(serving, std::move(out.messages), std::move(reply),
                  common::describeRuntimeChange(change));
}

// Sends each message to every live worker of `serving`; answers when all of them said
// "changed" (or exited, or 5 s passed).
void Master::broadcastChange(Generation& serving, std::vector<nlohmann::json> messages,
                             ApiReply reply, std::string description) {
  std::uint64_t seq = ++changeSeq_;
  auto& pending = pendingChanges_[seq];
  pending.reply = std::move(reply);
  pending.generation = serving.id();
  pending.description = std::move(description);
  for (auto& message : messages) {
    message["seq"] = seq;
    for (auto& slot : serving.slots()) {
      WorkerProcess* w = slot.process.get();
      // A worker still starting gets it after its handover (messages keep their order).
      if (!w || w->phase() == WorkerPhase::Exited) continue;
      w->send(message);
      pending.waiting.push_back(w->pid());
    }
    serving.recordChange(std::move(message));
  }
  pending.deadlineMs = uv_now(&loop_) + 5'000;
  finishChangeIfDone(seq);
}

void Master::onWorkerChanged(WorkerProcess& worker, const common::ControlMessage& message) {
  std::uint64_t seq = message.body.value("seq", std::uint64_t{0});
  auto it = pendingChanges_.find(seq);
  if (it == pendingChanges_.end()) return;
  auto& waiting = it->second.waiting;
  if (auto pos = std::find(waiting.begin(), waiting.end(), worker.pid()); pos != waiting.end())
    waiting.erase(pos);
  std::string error = message.body.value("error", "");
  if (!error.empty())
    it->second.errors.push_back("worker " + std::to_string(worker.pid()) + ": " + error);
  finishChangeIfDone(seq);
}

void Master::finishChangeIfDone(std::uint64_t seq) {
  auto it = pendingChanges_.find(seq);
  if (it == pendingChanges_.end()) return;
  auto& p = it->second;
  // A worker that exited meanwhile will get the change with its respawn.
  std::erase_if(p.waiting, [this](pid_t pid) { return !workerAlive(pid); });
  bool expired = uv_now(&loop_) >= p.deadlineMs;
  if (!p.waiting.empty() && !expired) {
    armChangeTimer();
    return;
  }
  nlohmann::json answer = {
      {"ok", p.errors.empty()}, {"generation", p.generation}, {"applied", p.description}};
  if (!p.errors.empty()) answer["error"] = p.errors.front();
  if (expired && !p.waiting.empty())
    answer["warning"] = std::to_string(p.waiting.size()) + " worker(s) did not confirm in 5 s";
  ApiReply reply = std::move(p.reply);
  pendingChanges_.erase(it);
  if (reply) reply(answer);
}

void Master::armChangeTimer() {
  if (!changeTimer_.initialized()) {
    uv_timer_init(&loop_, changeTimer_.get());
    changeTimer_->data = this;
  }
  if (uv_is_active(changeTimer_.base())) return;
  uv_timer_start(
      changeTimer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<Master*>(t->data);
        if (!self) return;
        std::vector<std::uint64_t> seqs;
        for (const auto& [seq, p] : self->pendingChanges_) seqs.push_back(seq);
        for (auto seq : seqs) self->finishChangeIfDone(seq);
      },
      100, 0);
}

bool Master::workerAlive(pid_t pid) const {
  for (const auto& g : generations_)
    for (const auto& slot : g->slots())
      if (slot.process && slot.process->pid() == pid &&
          slot.process->phase() != WorkerPhase::Exited)
        return true;
  return false;
}

void Master::saveJournal() {
  const std::string& path = stateFile_;
  if (path.empty()) return;
  std::string error;
  if (!journal_.saveStateFile(path, error)) common::log::error("state_file: {}", error);
}

// Changes that waited for a reload to end, applied in arrival order.
void Master::applyQueuedChanges() {
  auto queued = std::move(queuedChanges_);
  queuedChanges_.clear();
  for (auto& [request, reply] : queued) handleChange(request, std::move(reply));
}

}  // namespace molt::master
