// The session cache's second tier, seen from a worker: TLS sessions shared with the other molt
// instances of a fleet through Redis.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "common/redis.hpp"
#include "common/uv_handle.hpp"
#include "shm/worker_stats.hpp"

namespace molt::worker {

// One Redis link per worker (opened when its TLS contexts are built, closed when it drains).
// Sessions are written under fleet.prefix + "tls:session:" + the id in hex, with a TTL; a lookup
// is answered within fleet.lookup_timeout or given up. Answers are untrusted bytes: the caller
// decodes and checks them (TlsSessionStore). While Redis is out of reach nothing is asked or
// written, so handshakes never wait on it. Worker loop only; nothing here throws.
class FleetSessions {
 public:
  // `value`: the stored bytes (empty when absent, timed out or refused). Never called from inside
  // lookup() itself, nor after this object is destroyed.
  using Answer = std::function<void(std::string_view value)>;

  FleetSessions(uv_loop_t* loop, const common::FleetConfig& config, shm::WorkerRow* stats);
  ~FleetSessions();
  FleetSessions(const FleetSessions&) = delete;
  FleetSessions& operator=(const FleetSessions&) = delete;

  // Redis answers: worth asking.
  bool available() const { return link_.ready(); }
  // Writes `value` under `id` for `ttl` (capped by fleet.session_ttl), without waiting.
  void store(std::span<const std::uint8_t> id, std::span<const std::uint8_t> value,
             std::chrono::milliseconds ttl) noexcept;
  // Asks for `id`. False (and `answer` never called) when Redis is out of reach.
  bool lookup(std::span<const std::uint8_t> id, Answer answer) noexcept;
  // A session that did not check out (counted, and logged once in a while).
  void refused(std::string_view why) noexcept;
  void hit() noexcept;

 private:
  std::string keyOf(std::span<const std::uint8_t> id) const;
  void expire() noexcept;
  void armTimer() noexcept;

  uv_loop_t* loop_;
  std::string prefix_;
  std::chrono::milliseconds ttl_, timeout_;
  shm::WorkerRow* stats_;  // this worker's row of its stats zone, or nullptr
  shm::WorkerRow local_{};
  common::RedisLink link_;
  // Lookups awaiting an answer, by sequence number: also deadline order (one timeout for all).
  struct Waiting {
    std::uint64_t deadline;
    Answer answer;
  };
  std::map<std::uint64_t, Waiting> waiting_;
  std::uint64_t next_ = 1;
  common::UvHandle<uv_timer_t> timer_;
  std::uint64_t nextRefusalLog_ = 0;
};

}  // namespace molt::worker
