#include "master/tls_zones.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "common/log.hpp"
#include "common/proc_memory.hpp"

namespace molt::master {
namespace {

bool needsTls(const common::Config& config) {
  for (const auto& f : config.frontends)
    for (const auto& b : f.binds)
      if (b.tls) return true;
  return false;
}

}  // namespace

TlsZones::TlsZones(uv_loop_t* loop) : loop_(loop) {
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
}

TlsZones::~TlsZones() = default;

std::string TlsZones::prepare(const common::Config& config,
                              std::shared_ptr<shm::SessionCache>& cache,
                              std::shared_ptr<shm::TicketKeys>& keys) const {
  cache.reset();
  keys.reset();
  if (!needsTls(config)) return {};
  std::string error;
  std::uint64_t bytes = config.tls.sessionCacheBytes;
  if (bytes != 0 && cache_ && cache_->zone().size() == bytes) {
    cache = cache_;
  } else if (bytes != 0) {
    cache = shm::SessionCache::create(bytes, error);
    if (!cache) return "tls.session_cache: " + error;
    common::log::info("tls: session cache zone of {} ({} shards){}", common::formatBytes(bytes),
                      cache->shardCount(), cache_ ? ", replacing the old size once it serves" : "");
  }
  keys = keys_;
  if (!keys) {
    keys = shm::TicketKeys::create(error);
    if (!keys) return "tls: ticket keys zone: " + error;
  }
  return {};
}

void TlsZones::commit(const common::Config& config, std::shared_ptr<shm::SessionCache> cache,
                      std::shared_ptr<shm::TicketKeys> keys) {
  cache_ = std::move(cache);  // generations that use the old ones keep them alive
  keys_ = std::move(keys);
  rotation_ = keys_ ? config.tls.ticketKeyRotation : common::Millis(0);
  if (keys_)
    scheduleRotation();
  else
    uv_timer_stop(timer_.get());
  configureFleet(config);
}

void TlsZones::configureFleet(const common::Config& config) {
  if (!config.fleet.enabled || !keys_) {
    if (fleet_) common::log::info("fleet: leaving the fleet; ticket keys are this instance's own");
    fleet_.reset();
    return;
  }
  if (!fleet_ || !fleet_->sameAs(config.fleet)) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    fleet_ = std::make_unique<FleetRing>(loop_, config.fleet,
                                         std::string(host) + ":" + std::to_string(getpid()));
    common::log::info("fleet: sharing TLS resumption through redis {} (prefix {})",
                      config.fleet.redis, config.fleet.prefix);
  }
  fleet_->use(keys_, rotation_);
}

void TlsZones::rotateNow(std::function<void(nlohmann::json)> done) {
  if (!keys_) return done({{"ok", false}, {"error", "no TLS bind: no ticket keys to rotate"}});
  auto answer = [this, done](bool rotated, const std::string& note) {
    scheduleRotation(rotated ? 0 : kFleetRetryMs);
    done({{"ok", rotated}, {rotated ? "status" : "error", note}});
  };
  if (fleet_ && fleet_->rotate(true, answer)) return;
  bool rotated = rotateLocally();
  answer(rotated, rotated ? (fleet_ ? "redis out of reach: rotated this instance's keys"
                                    : "rotated this instance's keys")
                          : "rotation failed (no randomness?)");
}

nlohmann::json TlsZones::fleetReport() const {
  return fleet_ ? fleet_->report() : nlohmann::json(nullptr);
}

void TlsZones::scheduleRotation(std::uint64_t floorMs) {
  if (!keys_ || rotation_.count() <= 0) return;
  // From the zone's own record, so neither a reload nor an upgrade restarts the period.
  std::int64_t due = keys_->snapshot().rotatedAt + rotation_.count() / 1000;
  std::int64_t now = std::time(nullptr);
  std::uint64_t delayMs = due > now ? static_cast<std::uint64_t>(due - now) * 1000 : 0;
  delayMs = std::max(delayMs, floorMs);
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<TlsZones*>(t->data)) self->rotate();
      },
      delayMs, 0);
}

// With a fleet in reach, the fleet's lease decides who rotates; without, this master rotates its
// own ring, and rejoins the fleet's when Redis answers again.
void TlsZones::rotate() {
  if (!keys_) return;
  if (fleet_ && fleet_->rotate(false, [this](bool rotated, const std::string&) {
        scheduleRotation(rotated ? 0 : kFleetRetryMs);
      })) {
    return;
  }
  rotateLocally();
  scheduleRotation();
}

bool TlsZones::rotateLocally() {
  if (keys_->rotate()) {
    common::log::info("tls: ticket keys rotated ({} rotations)", keys_->snapshot().rotations);
    return true;
  }
  common::log::error("tls: ticket key rotation failed (no randomness?); keeping the keys");
  return false;
}

nlohmann::json TlsZones::inventory(std::vector<int>& fds) const {
  nlohmann::json entry = nlohmann::json::object();
  if (cache_) {
    entry["session_cache"] = {{"fd", cache_->zone().fd()}, {"size", cache_->zone().size()}};
    fds.push_back(cache_->zone().fd());
  }
  if (keys_) {
    entry["ticket_keys"] = {{"fd", keys_->zone().fd()}};
    fds.push_back(keys_->zone().fd());
  }
  entry["rotation_ms"] = rotation_.count();
  return entry;
}

std::string TlsZones::restore(const nlohmann::json& entry) {
  std::string error;
  if (auto c = entry.find("session_cache"); c != entry.end()) {
    common::UniqueFd fd(c->at("fd").get<int>());
    fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
    cache_ = shm::SessionCache::attach(std::move(fd), c->at("size").get<std::uint64_t>(), error);
    if (!cache_) return "session cache zone: " + error;
  }
  if (auto k = entry.find("ticket_keys"); k != entry.end()) {
    common::UniqueFd fd(k->at("fd").get<int>());
    fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
    keys_ = shm::TicketKeys::attach(std::move(fd), shm::Access::ReadWrite, error);
    if (!keys_) return "ticket keys zone: " + error;
  }
  rotation_ = common::Millis(entry.value("rotation_ms", 0));
  scheduleRotation();
  return {};
}

std::shared_ptr<shm::SessionCache> TlsZones::cacheByFd(int fd) const {
  if (cache_ && cache_->zone().fd() == fd) return cache_;
  return nullptr;
}

}  // namespace molt::master
