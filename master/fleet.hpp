// The fleet's ticket-key ring: one ring for every molt instance sharing a Redis ("fleet"), kept
// in Redis and mirrored into each instance's own ticket-key zone.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/config.hpp"
#include "common/redis.hpp"
#include "common/uv_handle.hpp"
#include "shm/ticket_keys.hpp"

namespace molt::master {

// Where this instance's ring comes from.
enum class RingSource {
  Local,  // this master's own keys: no fleet, Redis out of reach, or not synced yet
  Fleet   // the ring in Redis, as last read
};

// Protocol (keys under fleet.prefix): "tls:ticket-ring" holds the ring (shm::encodeTicketRing);
// "tls:ticket-ring:lease" is the rotation lease, taken with SET NX PX by the master that rotates.
// Every master reads the ring on connecting and every kPollMs, and publishes it into its zone
// when it differs; an empty Redis is seeded with the first master's own ring (SET NX). The ring's
// three slots make propagation delays harmless: the key a rotation makes current was already
// every instance's `next`, which they decrypt with. Keys in Redis are never the only copy: each
// zone holds the ring, and a master that cannot reach Redis rotates its own (TlsZones).
// Everything read from Redis is decoded and checked before use (decodeTicketRing).
// Master process, master loop.
class FleetRing {
 public:
  static constexpr std::uint64_t kPollMs = 2000;

  // `instance` names this master in the lease ("host:pid").
  FleetRing(uv_loop_t* loop, const common::FleetConfig& config, std::string instance);
  ~FleetRing();
  FleetRing(const FleetRing&) = delete;
  FleetRing& operator=(const FleetRing&) = delete;

  // Same Redis, password and prefix: a reload keeps this ring and its connection.
  bool sameAs(const common::FleetConfig& config) const;
  // The zone to mirror into and the rotation period (the instance's, after each commit).
  void use(std::shared_ptr<shm::TicketKeys> keys, common::Millis rotation);
  // A rotation is due (or asked for: `force`). True when the fleet takes care of it (the answer
  // comes asynchronously; `done` is told whether keys changed); false when Redis is out of reach
  // and the caller rotates locally.
  bool rotate(bool force, std::function<void(bool rotated, std::string note)> done);
  // For `molt ctl cache`: link state, ring source, last sync.
  nlohmann::json report() const;
  RingSource source() const { return source_; }

 private:
  void sync() noexcept;
  void seed() noexcept;
  bool adopt(std::string_view bytes, const char* how) noexcept;
  void rotateHeld(bool force, std::function<void(bool, std::string)> done) noexcept;
  void writeRotated(shm::TicketKeySet ring, std::function<void(bool, std::string)> done) noexcept;

  uv_loop_t* loop_;
  common::FleetConfig config_;
  std::string instance_;
  std::string ringKey_, leaseKey_;
  common::RedisLink link_;
  std::shared_ptr<shm::TicketKeys> keys_;
  common::Millis rotation_{0};
  RingSource source_ = RingSource::Local;
  std::int64_t syncedAt_ = 0;  // unix seconds of the last read that checked out
  std::string problem_;        // the last ring read that did not check out, or ""
  bool syncing_ = false;
  common::UvHandle<uv_timer_t> poll_;
};

}  // namespace molt::master
