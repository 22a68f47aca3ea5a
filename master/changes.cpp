#include "master/changes.hpp"

#include <algorithm>

#include "common/log.hpp"
#include "common/runtime_change.hpp"
#include "master/change_kinds.hpp"
#include "master/peer_files.hpp"

namespace molt::master {
namespace {

// How long the API waits for every worker to confirm a change.
constexpr uint64_t kConfirmMs = 5'000;
// How often a change waiting for connections to end looks again (the counts live in the zone).
constexpr uint64_t kIdlePollMs = 50;
constexpr uint64_t kDefaultIdleTimeoutMs = 10'000;

nlohmann::json failure(const std::string& error) {
  return {{"ok", false}, {"error", error}};
}

}  // namespace

ChangeCoordinator::ChangeCoordinator(uv_loop_t* loop, Supervisor& supervisor,
                                     HealthChecker& checker, std::function<bool()> reloading)
    : loop_(loop), supervisor_(supervisor), checker_(checker), reloading_(std::move(reloading)) {
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
}

ChangeCoordinator::~ChangeCoordinator() = default;

void ChangeCoordinator::handle(const nlohmann::json& request, const ApiPeer& peer, ApiReply reply) {
  handleWhenIdle(request, peer, std::move(reply), uv_now(loop_));
}

// A reload under way builds its generation from the journal as it was: the change applies once
// that generation serves, so that it gets the change too. A kind that must wait for connections
// to end (server.del) waits at most `timeout_ms` (default 10 s; 0: do not wait), then is refused
// with the count, the server left draining.
void ChangeCoordinator::handleWhenIdle(const nlohmann::json& request, const ApiPeer& peer,
                                       ApiReply reply, uint64_t startedMs) {
  auto cmd = request.find("cmd");
  const ChangeKind* kind =
      cmd != request.end() && cmd->is_string() ? findChangeKind(cmd->get<std::string>()) : nullptr;
  if (!kind) return reply(failure("cmd: not a change command"));
  if (reloading_()) return queued_.push_back({request, peer, std::move(reply)});
  Generation* serving = supervisor_.current();
  if (!serving || !serving->serverState()) return reply(failure("no generation is serving"));
  std::uint32_t connections = kind->busy ? kind->busy(*serving, request) : 0;
  if (connections == 0) return apply(*serving, request, peer, std::move(reply));
  uint64_t timeout = kDefaultIdleTimeoutMs;
  if (auto t = request.find("timeout_ms"); t != request.end()) {
    if (!t->is_number_unsigned()) return reply(failure("timeout_ms: expected an integer >= 0"));
    timeout = t->get<uint64_t>();
  }
  if (uv_now(loop_) - startedMs >= timeout)
    return reply(failure("server: " + request.value("backend", "") + "/" +
                         request.value("server", "") + " still has " + std::to_string(connections) +
                         " connection(s) after " + std::to_string(timeout) +
                         " ms; left draining (no new traffic): retry, or raise timeout_ms"));
  waitForIdle(request, peer, std::move(reply), startedMs);
}

void ChangeCoordinator::waitForIdle(const nlohmann::json& request, const ApiPeer& peer,
                                    ApiReply reply, uint64_t startedMs) {
  Waiting& w = waiting_.emplace_back();
  w.request = request;
  w.peer = peer;
  w.reply = std::move(reply);
  w.startedMs = startedMs;
  uv_timer_init(loop_, w.timer.get());
  w.timer->data = this;
  uv_timer_start(
      w.timer.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<ChangeCoordinator*>(t->data);
        if (!self) return;
        auto it = std::find_if(self->waiting_.begin(), self->waiting_.end(),
                               [t](const Waiting& w) { return w.timer.get() == t; });
        if (it == self->waiting_.end()) return;
        nlohmann::json request = std::move(it->request);
        ApiPeer peer = std::move(it->peer);
        ApiReply reply = std::move(it->reply);
        uint64_t started = it->startedMs;
        self->waiting_.erase(it);  // closes the timer: its memory goes in the close callback
        self->handleWhenIdle(request, peer, std::move(reply), started);
      },
      kIdlePollMs, 0);
}

void ChangeCoordinator::apply(Generation& serving, const nlohmann::json& request,
                              const ApiPeer& peer, ApiReply reply) {
  const ChangeKind* kind = findChangeKind(request.at("cmd").get<std::string>());
  common::Config& config = serving.mutableConfig();
  if (kind->refuse)
    if (std::string why = kind->refuse(serving, request); !why.empty()) return reply(failure(why));
  // What a deletion removes, found before the config forgets it.
  RemovedRows removed = kind->removes ? kind->removes(config, request) : RemovedRows{};
  nlohmann::json change = request;
  // With global.state_file, the journal with the change is on disk before the change applies: a
  // change the file cannot keep (disk full, read-only) is refused, and the file keeps the journal
  // as it was.
  Journal next;
  auto keep = [&](const nlohmann::json& resolved) -> std::string {
    if (stateFile_.empty()) return "";
    next = journal_;
    next.append(resolved);
    std::string why;
    if (next.saveStateFile(stateFile_, why)) return "";
    common::log::error("state_file: {}: runtime change refused", why);
    return "state_file: " + why + ": change refused, the runtime state is as it was";
  };
  // An address given as a host name is resolved here, synchronously, as the file's are: the loop
  // waits for the resolver (give addresses as literals to avoid it).
  std::string error = common::applyRuntimeChange(config, change, filesReadableBy(peer), keep);
  if (!error.empty()) return reply(failure(error));

  Publication out;
  kind->publish(serving, change, removed, out);
  if (!out.zoneError.empty()) common::log::error("runtime change {}: {}", kind->cmd, out.zoneError);
  if (out.checksChanged) checker_.setTargets(HealthChecker::targetsOf(config));

  std::string description = common::describeRuntimeChange(change);
  if (stateFile_.empty())
    journal_.append(std::move(change));
  else
    journal_ = std::move(next);
  common::log::info("api: applied {}", description);
  broadcast(serving, std::move(out.ops), std::move(reply), std::move(description));
}

// Sends each operation to every live worker of `serving`; answers when all of them said
// "changed" (or exited, or kConfirmMs passed).
void ChangeCoordinator::broadcast(Generation& serving, std::vector<control::ChangeOp> ops,
                                  ApiReply reply, std::string description) {
  std::uint64_t seq = ++seq_;
  Pending& pending = pending_[seq];
  pending.reply = std::move(reply);
  pending.generation = serving.id();
  pending.description = std::move(description);
  for (auto& op : ops) {
    std::vector<pid_t> sent = serving.broadcast(control::Change{seq, std::move(op)});
    pending.waiting.insert(pending.waiting.end(), sent.begin(), sent.end());
  }
  pending.deadlineMs = uv_now(loop_) + kConfirmMs;
  finishIfDone(seq);
}

void ChangeCoordinator::onChanged(WorkerProcess& worker, const control::Changed& changed) {
  auto it = pending_.find(changed.seq);
  if (it == pending_.end()) return;
  auto& waiting = it->second.waiting;
  if (auto pos = std::find(waiting.begin(), waiting.end(), worker.pid()); pos != waiting.end())
    waiting.erase(pos);
  if (!changed.error.empty())
    it->second.errors.push_back("worker " + std::to_string(worker.pid()) + ": " + changed.error);
  finishIfDone(changed.seq);
}

void ChangeCoordinator::finishIfDone(std::uint64_t seq) {
  auto it = pending_.find(seq);
  if (it == pending_.end()) return;
  Pending& p = it->second;
  // A worker that exited meanwhile will get the change with its respawn.
  std::erase_if(p.waiting, [this](pid_t pid) { return !supervisor_.workerAlive(pid); });
  bool expired = uv_now(loop_) >= p.deadlineMs;
  if (!p.waiting.empty() && !expired) return armTimer();
  nlohmann::json answer = {
      {"ok", p.errors.empty()}, {"generation", p.generation}, {"applied", p.description}};
  if (!p.errors.empty()) answer["error"] = p.errors.front();
  if (expired && !p.waiting.empty())
    answer["warning"] = std::to_string(p.waiting.size()) + " worker(s) did not confirm in 5 s";
  ApiReply reply = std::move(p.reply);
  pending_.erase(it);
  if (reply) reply(answer);
}

void ChangeCoordinator::armTimer() {
  if (uv_is_active(timer_.base())) return;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<ChangeCoordinator*>(t->data);
        if (!self) return;
        std::vector<std::uint64_t> seqs;
        for (const auto& [seq, p] : self->pending_) seqs.push_back(seq);
        for (auto seq : seqs) self->finishIfDone(seq);
      },
      100, 0);
}

void ChangeCoordinator::saveJournal() {
  if (stateFile_.empty()) return;
  std::string error;
  if (!journal_.saveStateFile(stateFile_, error)) common::log::error("state_file: {}", error);
}

void ChangeCoordinator::applyQueued() {
  auto queued = std::move(queued_);
  queued_.clear();
  for (auto& q : queued) handle(q.request, q.peer, std::move(q.reply));
}

std::vector<std::string> ChangeCoordinator::adopt(Journal replayed,
                                                  const std::vector<JournalConflict>& conflicts,
                                                  std::string stateFile) {
  journal_ = std::move(replayed);
  stateFile_ = std::move(stateFile);
  std::vector<std::string> lines;
  for (const auto& c : conflicts) {
    common::log::error("{}", c.str());
    lines.push_back(c.str());
  }
  if (!conflicts.empty()) saveJournal();
  return lines;
}

void ChangeCoordinator::restore(Journal journal, std::string stateFile) {
  journal_ = std::move(journal);
  stateFile_ = std::move(stateFile);
}

}  // namespace molt::master
