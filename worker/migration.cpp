// Worker: connection migration. A draining worker offers its sessions to the master, which hands
// each to a serving worker of the newest generation ("migrate" -> "adopt" -> "adopted" ->
// "migrated", common/control_messages.hpp); a serving worker adopts what it is handed.
#include <signal.h>
#include <unistd.h>

#include "common/log.hpp"
#include "worker/http/session.hpp"
#include "worker/net/plain_stream.hpp"
#include "worker/tcp/session.hpp"
#include "worker/worker.hpp"

namespace molt::worker {

// Every session is asked; each moves now, at its next clean boundary, or never (TLS).
void Worker::offerSessions() {
  std::vector<Session*> live;
  for (auto& [raw, session] : sessions_) live.push_back(raw);
  if (offers_.empty()) round_ = MigrationRound{};  // else the round under way goes on
  std::size_t before = round_.offered;
  for (Session* session : live) session->migrateWhenClean();
  std::uint32_t staying = stayingCount();
  common::log::info(
      "draining: {} connections offered to the newest generation at once, {} stay "
      "(TLS){}",
      round_.offered - before, staying,
      live.size() > round_.offered - before + staying ? ", the rest once their exchange ends" : "");
  statsDirty_ = true;
}

std::uint32_t Worker::stayingCount() const {
  std::uint32_t n = 0;
  for (const auto& [raw, session] : sessions_)
    if (!session->movable()) ++n;
  return n;
}

void Worker::offerMigration(Session* session, control::MovingConnection connection) noexcept {
  std::uint64_t id = nextOffer_++;
  offers_.emplace(id, session);
  offerOf_[session] = id;
  ++round_.offered;
  if (control_ && control_->open() &&
      control_->send(control::Migrate{id, std::move(connection)}.encode()))
    return;
  // Nobody to offer it to: refused from the loop's check phase, not from inside the session.
  refuseSoon_ = true;
  uv_check_start(reaper_.get(), [](uv_check_t* h) {
    if (auto* self = static_cast<Worker*>(h->data)) self->reapEnded();
  });
}

void Worker::onMigrated(const control::Migrated& answer) {
  auto it = offers_.find(answer.id);
  if (it == offers_.end()) return;  // the session ended meanwhile (a hard stop)
  Session* session = it->second;
  offers_.erase(it);
  offerOf_.erase(session);
  bool taken = answer.error.empty();
  if (taken) {
    ++migrated_;
    ++round_.moved;
  } else {
    ++round_.refused;
    round_.lastRefusal = answer.error;
  }
  statsDirty_ = true;
  session->migrationAnswered(taken);
  if (offers_.empty()) logMigrationRound();
}

// Every open offer is answered "not taken" (the master is gone: nobody else will take them).
// The sessions serve on.
void Worker::refuseOffers(const char* why) {
  if (offers_.empty()) return;
  auto open = std::move(offers_);
  offers_.clear();
  offerOf_.clear();
  for (auto& [id, session] : open) {
    ++round_.refused;
    round_.lastRefusal = why;
    if (sessions_.count(session)) session->migrationAnswered(false);
  }
  logMigrationRound();
}

void Worker::logMigrationRound() {
  if (round_.offered == 0) return;
  if (round_.refused == 0)
    common::log::info("migration: {} connections moved to the newest generation, {} left here",
                      round_.moved, connections());
  else
    common::log::warn(
        "migration: {} connections moved to the newest generation, {} stay here (last reason: "
        "{})",
        round_.moved, round_.refused, round_.lastRefusal);
  round_ = MigrationRound{};
}

// The receiving side: checks what it is handed against its own config, builds the session,
// confirms, and only then reads or writes a byte.
void Worker::onAdopt(control::Adopt& adopt) {
  if (!killOnAdopt_.empty() && unlink(killOnAdopt_.c_str()) == 0) raise(SIGKILL);
  std::string error;
  std::function<void()> begin;
  std::unique_ptr<Session> session;
  if (phase_ != ServingPhase::Serving)
    error = "the receiving worker does not serve";
  else
    session = adoptSession(adopt.connection, begin, error);
  // Confirmed before the session reads or writes a byte: should this worker die before the
  // master reads the answer, the sender serves on, and no byte went to two places.
  control_->send(control::Adopted{adopt.ticket, error}.encode());
  if (!session) {
    common::log::warn("adopting a {} connection of frontend {}: {}",
                      control::kindName(adopt.connection.kind), adopt.connection.frontend, error);
    return;  // its descriptors close here; the sender's copies keep the connection
  }
  ++adopted_;
  sessions_.emplace(session.get(), std::move(session));
  connectionCountChanged();
  begin();
  keepDescriptorsInReserve();
}

std::unique_ptr<Session> Worker::adoptSession(control::MovingConnection& c,
                                              std::function<void()>& begin, std::string& error) {
  Frontend* frontend = frontendNamed(c.frontend);
  if (!frontend) return error = "no frontend " + c.frontend + " in this generation", nullptr;
  bool http = c.kind != control::MigrateKind::Tcp;
  if ((frontend->config().mode == common::Mode::Http) != http)
    return error = "frontend " + c.frontend + " changed mode", nullptr;
  std::shared_ptr<Backend> backend;
  int serverIndex = -1;
  if (c.kind != control::MigrateKind::Http) {
    auto it = backendsByName_.find(c.backend);
    if (it == backendsByName_.end())
      return error = "no backend " + c.backend + " in this generation", nullptr;
    backend = it->second;
    serverIndex = c.server.empty() ? -1 : backend->find(c.server);
  }
  auto client = std::make_unique<PlainStream>(loop_, buffers_);
  if (int rc = client->adopt(c.client.get()); rc < 0)
    return error = std::string("client socket: ") + uv_strerror(rc), nullptr;
  c.client.release();  // the stream owns it now
  if (c.kind == control::MigrateKind::Http) {
    auto session = std::make_unique<HttpSession>(*this, frontend->sharedConfig(),
                                                 routers_.at(frontend), std::move(client));
    begin = [raw = session.get(), input = std::move(c.input)] { raw->startAdopted(input); };
    return session;
  }
  auto server = std::make_unique<PlainStream>(loop_, buffers_);
  if (int rc = server->adopt(c.upstream.get()); rc < 0)
    return error = std::string("server socket: ") + uv_strerror(rc), nullptr;
  c.upstream.release();
  auto session = std::make_unique<TcpSession>(*this, frontend->sharedConfig(), std::move(backend),
                                              std::move(client));
  // std::function copies its callable: the stream travels in a shared holder.
  auto held = std::make_shared<std::unique_ptr<PlainStream>>(std::move(server));
  begin = [raw = session.get(), held, serverIndex] {
    raw->startAdopted(std::move(*held), serverIndex);
  };
  return session;
}

}  // namespace molt::worker
