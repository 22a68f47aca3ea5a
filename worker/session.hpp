// Session: one accepted client connection as the worker's registry sees it (tcp or http).
#pragma once

#include <uv.h>

#include "common/config.hpp"

namespace molt::worker {

class AccessLog;
class BufferPool;
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
};

}  // namespace molt::worker
