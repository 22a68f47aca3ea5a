#include "master/migrator.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace molt::master {
namespace {

// "" when `fd` is a connected stream socket of a family a frontend binds, else what it is.
std::string checkSocket(int fd, const char* which) {
  int type = 0, domain = 0, listening = 0;
  socklen_t length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0)
    return std::string(which) + ": not a socket (" + std::strerror(errno) + ")";
  length = sizeof domain;
  getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length);
  length = sizeof listening;
  getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length);
  if (type != SOCK_STREAM || listening || (domain != AF_INET && domain != AF_INET6))
    return std::string(which) + ": not a connected TCP socket";
  return {};
}

}  // namespace

Migrator::Migrator(uv_loop_t* loop, Hooks hooks) : loop_(loop), hooks_(std::move(hooks)) {
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
}

std::string Migrator::offer(Generation& from, WorkerProcess& sender, control::Migrate& migrate) {
  if (sender.phase() != WorkerPhase::Draining) return "migrate from a worker that is not draining";
  auto& c = migrate.connection;
  if (std::string e = checkSocket(c.client.get(), "migrate: client"); !e.empty()) return e;
  if (c.upstream)
    if (std::string e = checkSocket(c.upstream.get(), "migrate: server"); !e.empty()) return e;
  Generation* to = hooks_.current ? hooks_.current() : nullptr;
  WorkerProcess* receiver = to && to != &from ? pickReceiver(*to) : nullptr;
  if (!receiver) {
    ++refused_;
    sender.send(control::Migrated{migrate.id, "no serving worker of a newer generation"}.encode());
    return {};  // its descriptors close here; the sender's keep the connection
  }
  std::uint64_t ticket = nextTicket_++;
  pending_[ticket] =
      Pending{sender.pid(), migrate.id, receiver->pid(), from.id(), to->id(), monotonicMs()};
  ++incoming_[receiver->pid()];
  receiver->send(control::Adopt{ticket, std::move(c)}.encode());
  if (!uv_is_active(timer_.base()))
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
          if (auto* self = static_cast<Migrator*>(t->data)) self->checkTimeouts();
        },
        1000, 1000);
  return {};
}

// The serving worker with the fewest connections, counting those already on their way to it.
WorkerProcess* Migrator::pickReceiver(Generation& generation) const {
  const auto& incoming = incoming_;
  WorkerProcess* best = nullptr;
  unsigned bestLoad = 0;
  for (auto& slot : generation.slots()) {
    WorkerProcess* w = slot.process.get();
    if (!w || w->phase() != WorkerPhase::Ready || w->controlFd() < 0) continue;
    auto it = incoming.find(w->pid());
    unsigned load = w->connections() + (it == incoming.end() ? 0 : it->second);
    if (!best || load < bestLoad) best = w, bestLoad = load;
  }
  return best;
}

std::string Migrator::answered(WorkerProcess& receiver, const control::Adopted& adopted) {
  auto it = pending_.find(adopted.ticket);
  if (it == pending_.end() || it->second.receiver != receiver.pid())
    return "adopted: ticket " + std::to_string(adopted.ticket) + " was not offered to it";
  Pending p = it->second;
  forget(it);
  if (adopted.error.empty()) {
    ++moved_;
  } else {
    ++refused_;
    common::log::warn("migration: generation {} refused a connection of generation {}: {}", p.to,
                      p.from, adopted.error.substr(0, 300));
  }
  answerSender(p, adopted.error.empty() ? "" : "refused: " + adopted.error.substr(0, 300));
  return {};
}

void Migrator::answerSender(const Pending& pending, const std::string& error) {
  // A sender gone meanwhile: a taken connection is the receiver's, a refused one closed with it.
  if (WorkerProcess* sender = hooks_.worker(pending.sender))
    sender->send(control::Migrated{pending.id, error}.encode());
}

void Migrator::forget(std::unordered_map<std::uint64_t, Pending>::iterator it) {
  auto count = incoming_.find(it->second.receiver);
  if (count != incoming_.end() && --count->second == 0) incoming_.erase(count);
  pending_.erase(it);
}

nlohmann::json Migrator::inventory() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [ticket, p] : pending_)
    out.push_back({{"ticket", ticket},
                   {"sender", p.sender},
                   {"id", p.id},
                   {"receiver", p.receiver},
                   {"from", p.from},
                   {"to", p.to},
                   {"sent_ms", p.sentMs}});
  return out;
}

void Migrator::restore(const nlohmann::json& pending) {
  for (const auto& p : pending) {
    std::uint64_t ticket = p["ticket"].get<std::uint64_t>();
    pending_[ticket] = Pending{p["sender"].get<pid_t>(),   p["id"].get<std::uint64_t>(),
                               p["receiver"].get<pid_t>(), p["from"].get<unsigned>(),
                               p["to"].get<unsigned>(),    p["sent_ms"].get<std::uint64_t>()};
    nextTicket_ = std::max(nextTicket_, ticket + 1);
    ++incoming_[p["receiver"].get<pid_t>()];
  }
  // A receiver that exited during the exec answers nothing: its offers are refused now.
  std::vector<pid_t> receivers;
  for (const auto& [ticket, p] : pending_) receivers.push_back(p.receiver);
  for (pid_t pid : receivers)
    if (!hooks_.worker(pid)) workerExited(pid);
  if (!pending_.empty() && !uv_is_active(timer_.base()))
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
          if (auto* self = static_cast<Migrator*>(t->data)) self->checkTimeouts();
        },
        1000, 1000);
}

void Migrator::workerExited(pid_t pid) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.receiver != pid) {
      ++it;
      continue;
    }
    // Its copies of the sockets closed with it; it confirmed nothing, so it touched nothing.
    ++refused_;
    answerSender(it->second, "the receiving worker exited");
    auto next = std::next(it);
    forget(it);
    it = next;
  }
  if (pending_.empty()) uv_timer_stop(timer_.get());
}

void Migrator::checkTimeouts() {
  std::uint64_t now = monotonicMs();
  std::vector<pid_t> late;  // each once
  for (const auto& [ticket, p] : pending_)
    if (now - p.sentMs >= control::kAdoptTimeoutMs) late.push_back(p.receiver);
  std::sort(late.begin(), late.end());
  late.erase(std::unique(late.begin(), late.end()), late.end());
  // Replaced; its exit answers the senders (workerExited).
  for (pid_t pid : late)
    if (WorkerProcess* w = hooks_.worker(pid))
      hooks_.reject(*w, "no answer to a connection it was handed within " +
                            std::to_string(control::kAdoptTimeoutMs) + " ms");
  if (pending_.empty()) uv_timer_stop(timer_.get());
}

}  // namespace molt::master
