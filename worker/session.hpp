// Session: one accepted client connection as the worker's registry sees it (tcp or http).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/config.hpp"
#include "common/control_messages.hpp"
#include "shm/worker_stats.hpp"

namespace molt::worker {

// An idle keep-alive connection, or a tunnel idle both ways, is parked (SessionHost::park,
// parkTunnel) after this long: a client that sends again at once keeps its session; one that
// waits gives it back.
inline constexpr std::uint64_t kParkAfterMs = 1000;

class AccessLog;
class BufferPool;
class ClientStream;
struct ParkedTunnel;
class Router;
class ServerPool;

// A live client connection. The worker counts these for draining and destroys one only after it
// reported its end through SessionHost::sessionEnded, from outside the session's own callbacks.
class Session {
 public:
  virtual ~Session() = default;
  // Starts serving the client; called once, after the worker registered the session.
  virtual void start() = 0;
  // Ends the session now (fast stop); it reports sessionEnded like any end.
  virtual void abort() noexcept = 0;
  // The worker got the drain order: finish what is in flight, close an idle keep-alive
  // connection after `idleCloseDelay` (the worker spreads these over global.close_spread).
  // Tunnels stay open. Never ends the session from inside this call.
  virtual void drain(common::Millis idleCloseDelay) noexcept = 0;

  // Connection migration (docs/operations.md). A draining worker whose master offers a newer
  // generation asks each session to move: the session lets its connection go through
  // SessionHost::offerMigration once it is at a clean boundary (between requests, or a tunnel
  // with nothing read and unwritten), or serves on when it cannot move. Never ends the session
  // from inside this call. Default: the session never moves.
  virtual void migrateWhenClean() noexcept {}
  // The master's answer to the session's offer. Taken: another worker serves the connection
  // now; the session ends without touching its sockets. Not taken: it serves on, draining.
  virtual void migrationAnswered(bool taken) noexcept { (void)taken; }
  // False for a connection that can never move: its client side is TLS (OpenSSL cannot hand a
  // live session's keys to another process).
  virtual bool movable() const noexcept { return false; }
};

// What a session needs from the worker that runs it. Implemented by Worker.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual uv_loop_t* loop() = 0;
  virtual BufferPool& buffers() = 0;
  // Idle keep-alive connections to servers, shared by the worker's http sessions.
  virtual ServerPool& serverPool() = 0;
  virtual AccessLog& accessLog() = 0;
  // The session is finished and may be destroyed by the host (not from inside this call).
  virtual void sessionEnded(Session* session) noexcept = 0;
  // The session stopped reading its sockets and has nothing read and unwritten but
  // `connection.input`: hands the connection to the master for a newer generation. The answer
  // comes through Session::migrationAnswered, never from inside this call.
  virtual void offerMigration(Session* session,
                              common::control::MovingConnection connection) noexcept = 0;
  // The counters of frontend `index` (FrontendConfig::index) in the worker's stats zone; a row
  // of the host's own when there is none.
  virtual shm::FrontendRow& frontendStats(std::uint32_t index) noexcept {
    (void)index;
    static shm::FrontendRow unshared{};
    return unshared;
  }
  // An idle HTTP/1.1 keep-alive connection (worker/net/parking.hpp): the host keeps `fd`, a
  // duplicate of the session's descriptor, and `state` (ClientStream::takeParkState: TLS), until
  // the client sends again (then a new session serves it), or closes it at `deadline` (loop time,
  // ms). True: taken (`state` is empty), and the session ends without a word to the client;
  // false: `fd` and `state` are still the caller's.
  virtual bool park(const common::FrontendConfig& frontend, int fd, std::uint64_t deadline,
                    std::unique_ptr<ParkingLot::Cargo>& state) noexcept {
    (void)frontend, (void)fd, (void)deadline, (void)state;
    return false;
  }
  // An idle tunnel (worker/parked_tunnel.hpp): the host keeps `clientFd` and `serverFd`,
  // duplicates of the session's descriptors, and `tunnel`, until either side sends or closes or
  // `deadline` (loop time, ms) comes; then a new session serves the tunnel on. True: all three
  // taken (`tunnel` is empty), and the session ends without a word to either side.
  virtual bool parkTunnel(int clientFd, int serverFd, std::unique_ptr<ParkedTunnel>& tunnel,
                          std::uint64_t deadline) noexcept {
    (void)clientFd, (void)serverFd, (void)tunnel, (void)deadline;
    return false;
  }
  // An Http2Session opened or closed connections or streams (for the worker's stats).
  virtual void http2Changed(int connections, int streams) noexcept {
    (void)connections, (void)streams;
  }
  // A connection that opened with the HTTP/2 preface (`input`: the bytes read so far): the host
  // serves it with an Http2Session from now on. The calling session ends right after.
  virtual void startHttp2(std::unique_ptr<ClientStream> client,
                          std::shared_ptr<const common::FrontendConfig> frontend,
                          std::shared_ptr<const Router> router,
                          std::string_view input) noexcept = 0;
};

}  // namespace molt::worker
