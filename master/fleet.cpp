#include "master/fleet.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <ctime>

#include "common/log.hpp"

namespace molt::master {
namespace {

std::string_view textOf(const redisReply* reply) {
  return {reply->str, reply->len};
}

}  // namespace

FleetRing::FleetRing(uv_loop_t* loop, const common::FleetConfig& config, std::string instance)
    : loop_(loop),
      config_(config),
      instance_(std::move(instance)),
      ringKey_(config.prefix + "tls:ticket-ring"),
      leaseKey_(config.prefix + "tls:ticket-ring:lease"),
      link_(loop, common::fleetTarget(config), "fleet") {
  uv_timer_init(loop_, poll_.get());
  poll_->data = this;
  link_.onReady = [this] { sync(); };
  link_.onLost = [this] { source_ = RingSource::Local; };
  link_.start();
  uv_timer_start(
      poll_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<FleetRing*>(t->data)) self->sync();
      },
      kPollMs, kPollMs);
}

FleetRing::~FleetRing() = default;

bool FleetRing::sameAs(const common::FleetConfig& config) const {
  return config.redis == config_.redis && config.password == config_.password &&
         config.prefix == config_.prefix;
}

void FleetRing::use(std::shared_ptr<shm::TicketKeys> keys, common::Millis rotation) {
  bool changed = keys != keys_;
  keys_ = std::move(keys);
  rotation_ = rotation;
  if (changed) sync();
}

void FleetRing::sync() noexcept {
  if (!keys_ || !link_.ready() || syncing_) return;
  std::string_view get[] = {"GET", ringKey_};
  syncing_ = link_.command(get, [this](const redisReply* reply) {
    syncing_ = false;
    if (reply == nullptr) return;
    if (reply->type == REDIS_REPLY_NIL) return seed();
    if (reply->type != REDIS_REPLY_STRING) {
      problem_ = "GET " + ringKey_ + ": not a string";
      return;
    }
    adopt(textOf(reply), "read");
  });
}

// An empty Redis (first start of the fleet, or a Redis restarted without persistence) gets this
// master's ring; SET NX lets exactly one master's ring win, and everyone reads the winner.
void FleetRing::seed() noexcept {
  std::string ring = shm::encodeTicketRing(keys_->snapshot());
  std::string_view set[] = {"SET", ringKey_, ring, "NX"};
  link_.command(set, [this](const redisReply* reply) {
    if (reply == nullptr) return;
    if (reply->type == REDIS_REPLY_STATUS) {
      common::log::info("fleet: seeded the fleet's ticket-key ring with this instance's keys");
      source_ = RingSource::Fleet;
      syncedAt_ = std::time(nullptr);
      problem_.clear();
      return;
    }
    sync();  // another master seeded first
  });
}

// Checks `bytes` and publishes them into the zone when they differ from it. False when they do
// not check out (the zone keeps its ring).
bool FleetRing::adopt(std::string_view bytes, const char* how) noexcept {
  std::string error;
  std::optional<shm::TicketKeySet> ring = shm::decodeTicketRing(bytes, std::time(nullptr), error);
  if (!ring) {
    if (problem_ != error)
      common::log::error("fleet: {} in Redis refused: {}; keeping this instance's keys", ringKey_,
                         error);
    problem_ = error;
    source_ = RingSource::Local;
    return false;
  }
  problem_.clear();
  syncedAt_ = std::time(nullptr);
  if (!shm::sameTicketKeys(keys_->snapshot(), *ring)) {
    keys_->replace(*ring);
    common::log::info("fleet: {} the fleet's ticket keys (fleet rotation {})", how,
                      ring->rotations);
  }
  source_ = RingSource::Fleet;
  return true;
}

bool FleetRing::rotate(bool force, std::function<void(bool, std::string)> done) {
  if (!keys_ || !link_.ready()) return false;
  // The lease outlives this rotation for half a period, so no other master rotates again in it;
  // a master that dies holding it loses it at expiry.
  auto hold = std::max<std::int64_t>(force ? 5000 : rotation_.count() / 2, 1000);
  std::string px = std::to_string(hold);
  std::string_view set[] = {"SET", leaseKey_, instance_, "NX", "PX", px};
  return link_.command(set, [this, force, done](const redisReply* reply) {
    if (reply == nullptr) return done(false, "redis went away");
    if (reply->type != REDIS_REPLY_STATUS) {
      sync();  // another master rotates: its ring arrives with the next read
      return done(false, "another instance holds the rotation lease");
    }
    rotateHeld(force, done);
  });
}

void FleetRing::rotateHeld(bool force, std::function<void(bool, std::string)> done) noexcept {
  std::string_view get[] = {"GET", ringKey_};
  bool sent = link_.command(get, [this, force, done](const redisReply* reply) {
    if (reply == nullptr) return done(false, "redis went away");
    shm::TicketKeySet ring = keys_->snapshot();
    if (reply->type == REDIS_REPLY_STRING) {
      if (!adopt(textOf(reply), "read")) return done(false, problem_);
      ring = keys_->snapshot();
    }
    std::int64_t now = std::time(nullptr);
    if (!force && ring.rotatedAt + rotation_.count() / 1000 > now) {
      return done(false, "already rotated by another instance");
    }
    if (!shm::rotateTicketKeys(ring, now)) return done(false, "no randomness");
    writeRotated(ring, done);
  });
  if (!sent) done(false, "redis went away");
}

void FleetRing::writeRotated(shm::TicketKeySet ring,
                             std::function<void(bool, std::string)> done) noexcept {
  std::string bytes = shm::encodeTicketRing(ring);
  std::string_view set[] = {"SET", ringKey_, bytes};
  bool sent = link_.command(set, [this, ring, done](const redisReply* reply) {
    if (reply == nullptr || reply->type != REDIS_REPLY_STATUS)
      return done(false, "SET " + ringKey_ + " failed");
    keys_->replace(ring);
    source_ = RingSource::Fleet;
    syncedAt_ = std::time(nullptr);
    common::log::info("fleet: rotated the fleet's ticket keys (fleet rotation {})", ring.rotations);
    done(true, "rotated the fleet's ticket keys");
  });
  if (!sent) done(false, "redis went away");
}

nlohmann::json FleetRing::report() const {
  nlohmann::json r = {{"redis", config_.redis},
                      {"prefix", config_.prefix},
                      {"state", link_.ready() ? "connected" : "unavailable"},
                      {"since", link_.since()},
                      {"ring", source_ == RingSource::Fleet ? "fleet" : "local"},
                      {"synced_at", syncedAt_}};
  if (!link_.ready()) r["problem"] = link_.problem();
  if (!problem_.empty()) r["ring_problem"] = problem_;
  return r;
}

}  // namespace molt::master
