// The instance's TLS zones, owned by the master: the session cache and the ticket keys.
#pragma once

#include <uv.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "master/fleet.hpp"
#include "shm/session_cache.hpp"
#include "shm/ticket_keys.hpp"

namespace molt::master {

// One session cache zone (sized by tls.session_cache) and one ticket-key zone for all workers
// of all generations. A reload keeps both when the size is unchanged, so sessions survive it;
// a new size makes a new cache zone, and the old one lives exactly as long as the generations
// holding it (its pages go when the last process unmaps it). The master rotates the ticket keys
// on tls.ticket_key_rotation, resuming the schedule from the zone's own record after a reload or
// a binary upgrade. A reload is all or nothing: what a new config needs is prepared for its
// generation, and becomes the instance's (zones, rotation period) only once that generation
// serves. Master process, master loop.
class TlsZones {
 public:
  explicit TlsZones(uv_loop_t* loop);
  ~TlsZones();
  TlsZones(const TlsZones&) = delete;
  TlsZones& operator=(const TlsZones&) = delete;

  // The zones `config` needs (none when it has no TLS bind): the current ones where they fit, new
  // ones otherwise. Changes nothing the instance uses. "" or an error naming the zone and the
  // system call.
  std::string prepare(const common::Config& config, std::shared_ptr<shm::SessionCache>& cache,
                      std::shared_ptr<shm::TicketKeys>& keys) const;
  // The generation built with `cache` and `keys` from `config` serves: they, and its rotation
  // period, become the instance's.
  void commit(const common::Config& config, std::shared_ptr<shm::SessionCache> cache,
              std::shared_ptr<shm::TicketKeys> keys);
  // The fleet tier (config.fleet): starts, keeps (same Redis, password and prefix) or stops the
  // fleet's ticket ring. Called by commit, and after a binary upgrade's restore.
  void configureFleet(const common::Config& config);
  // Rotates now (the runtime API): the fleet's ring when Redis is in reach, else the local one.
  // `done` gets the answer to send.
  void rotateNow(std::function<void(nlohmann::json)> done);
  // The fleet's state for `molt ctl cache`, or null without a fleet.
  nlohmann::json fleetReport() const;
  std::shared_ptr<shm::SessionCache> sessionCache() const { return cache_; }
  std::shared_ptr<shm::TicketKeys> ticketKeys() const { return keys_; }

  // Binary upgrade: the zones' descriptors for the inventory, and their adoption after exec.
  nlohmann::json inventory(std::vector<int>& fds) const;
  // Re-attaches the zones listed by inventory() (same descriptor numbers). "" or an error.
  std::string restore(const nlohmann::json& entry);
  // A cache zone by the descriptor number the inventory gave it (after restore).
  std::shared_ptr<shm::SessionCache> cacheByFd(int fd) const;

 private:
  // Next rotation at the zone's due time, or `floorMs` from now if that is later.
  void scheduleRotation(std::uint64_t floorMs = 0);
  void rotate();
  bool rotateLocally();

  uv_loop_t* loop_;
  std::shared_ptr<shm::SessionCache> cache_;
  std::shared_ptr<shm::TicketKeys> keys_;
  common::Millis rotation_{0};
  common::UvHandle<uv_timer_t> timer_;
  std::unique_ptr<FleetRing> fleet_;
  // A fleet rotation that changed nothing here (another master holds the lease) is looked at
  // again this much later, when that master's ring has been read.
  static constexpr std::uint64_t kFleetRetryMs = 5000;
};

}  // namespace molt::master
