// RedisLink: one asynchronous connection to a Redis server on a libuv loop (hiredis + its libuv
// adapter), that keeps itself up: it authenticates, notices a lost or stalled server, and
// reconnects with backoff. The fleet tier's transport (master: ticket-key ring; worker: session
// cache second tier).
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/address.hpp"
#include "common/uv_handle.hpp"

struct redisAsyncContext;
struct redisReply;

namespace molt::common {

// Where a RedisLink connects: a TCP address or a unix socket path, and the password (empty: no
// AUTH).
struct RedisTarget {
  std::string text;  // as configured, for logs and reports
  SocketAddress address;
  std::string unixPath;  // set: a unix socket instead of `address`
  std::string password;
};

// Parses a fleet.redis value: "HOST:PORT" (see parseAddress; the port defaults to nothing, it is
// required) or "unix:/PATH". nullopt + `error` when it is neither.
std::optional<RedisTarget> parseRedisTarget(std::string_view text, std::string& error);

struct FleetConfig;
// The target a fleet config names, with its password. The config check parsed the same text; a
// name that no longer resolves leaves an address nothing answers on, which the link reports like
// any unreachable server.
RedisTarget fleetTarget(const FleetConfig& config);

enum class RedisPhase {
  Connecting,  // connect(2) and AUTH (or PING) under way
  Ready,       // commands are sent
  Waiting,     // lost or never reached: the next attempt is on a backoff timer
  Closed       // destroyed or never started
};

// Used on the loop's thread only; never throws from a loop callback. Commands are sent only while
// Ready; each one's `done` runs exactly once, with the reply or with nullptr when the link went
// down first, and never after the link is destroyed (destroying it from inside `done` is allowed).
// A command left unanswered for kStall drops the connection (a hung server is a lost server).
class RedisLink {
 public:
  using Done = std::function<void(const redisReply* reply)>;
  static constexpr std::uint64_t kConnectTimeoutMs = 1000;
  static constexpr std::uint64_t kStallMs = 2000;
  static constexpr std::uint64_t kFirstBackoffMs = 100;
  static constexpr std::uint64_t kMaxBackoffMs = 5000;

  // `name` prefixes log lines ("fleet: redis 127.0.0.1:6379: ...").
  RedisLink(uv_loop_t* loop, RedisTarget target, std::string name);
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  // Starts the first connection attempt.
  void start() noexcept;
  RedisPhase phase() const { return phase_; }
  bool ready() const { return phase_ == RedisPhase::Ready; }
  const RedisTarget& target() const { return target_; }
  // Why the link is not Ready ("connect: Connection refused", "AUTH: WRONGPASS ..."), or "".
  const std::string& problem() const { return problem_; }
  // Unix seconds of the last change between Ready and not Ready (0: none yet).
  std::int64_t since() const { return since_; }

  // Sends `args` as one command (binary-safe). False, without calling `done`, when not Ready or
  // out of memory.
  bool command(std::span<const std::string_view> args, Done done) noexcept;

  // Told each time the link becomes Ready, and each time it stops being Ready.
  std::function<void()> onReady;
  std::function<void()> onLost;

 private:
  struct Pending;
  static void onConnect(const redisAsyncContext* context, int status);
  static void onDisconnect(const redisAsyncContext* context, int status);
  static void onReply(redisAsyncContext* context, void* reply, void* data);

  void connect() noexcept;
  void authenticated(const redisReply* reply) noexcept;
  void drop(std::string why) noexcept;
  void lost(std::string why) noexcept;
  void scheduleRetry() noexcept;
  void checkStall() noexcept;
  bool send(std::span<const std::string_view> args, Done done) noexcept;

  uv_loop_t* loop_;
  RedisTarget target_;
  std::string name_;
  redisAsyncContext* context_ = nullptr;  // the connection in use, or nullptr
  RedisPhase phase_ = RedisPhase::Closed;
  std::string problem_;
  std::int64_t since_ = 0;
  std::uint64_t backoffMs_ = kFirstBackoffMs;
  std::deque<std::uint64_t> sentAt_;  // loop time of each command awaiting its reply, in order
  UvHandle<uv_timer_t> retryTimer_;   // the next attempt, and an attempt's connect timeout
  UvHandle<uv_timer_t> stallTimer_;
  bool loggedDown_ = false;  // one log line per outage, not one per attempt
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // Pending's view of `this`
};

}  // namespace molt::common
