// One proxied TCP connection: client <-> chosen server, spliced both ways.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "worker/backend.hpp"
#include "worker/buffer_pool.hpp"

namespace molt::worker {

class TcpSession;

// What a session needs from the worker that runs it. Implemented by Worker.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual uv_loop_t* loop() = 0;
  virtual BufferPool& buffers() = 0;
  // The session is finished and may be destroyed by the host (not from inside this call).
  virtual void sessionEnded(TcpSession* session) noexcept = 0;
};

// Lifecycle of a session.
enum class SessionPhase {
  Connecting,  // client accepted, a server connect is in progress (maybe a retry)
  Splicing,    // bytes flow both ways; half-closes propagate
  Done         // closed; the host destroys it
};

// Accepts nothing itself: the frontend hands it an accepted client. Reads from one side are
// written to the other with backpressure (reading stops while the other side's write queue is
// above kHighWater), EOF is forwarded as a shutdown, and the session ends when both directions
// are finished, on any error, or after `idle` without a byte either way.
class TcpSession {
 public:
  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr size_t kLowWater = 64 * 1024;

  TcpSession(SessionHost& host, const common::FrontendConfig& frontend, Backend& backend);
  ~TcpSession();
  TcpSession(const TcpSession&) = delete;
  TcpSession& operator=(const TcpSession&) = delete;

  // The client handle to uv_accept into (initialised on the host's loop).
  uv_tcp_t* client() { return client_.tcp.get(); }
  // Starts the first server connect. Call once, after uv_accept succeeded.
  void start();
  // Ends the session now (fast stop).
  void abort() noexcept { finish("stopped"); }
  SessionPhase phase() const { return phase_; }

 private:
  struct Side {
    common::UvHandle<uv_tcp_t> tcp;
    bool eof = false;       // this side sent FIN: nothing more will be read from it
    bool shutdown = false;  // we forwarded the other side's FIN to this side (completed)
    bool paused = false;    // reading stopped because the other side's queue is full
  };

  void connectNext();
  void onConnected(int status);
  void startSplicing();
  void startReading(Side& side);
  void onRead(Side& side, ssize_t nread, const uv_buf_t* buf);
  void onWritten(Side& target, int status);
  void forwardEof(Side& from);
  void maybeFinish();
  void armTimer(uint64_t timeoutMs);
  void onTimer();
  void finish(const char* reason) noexcept;
  Side& other(Side& side) { return &side == &client_ ? server_ : client_; }
  const char* sideName(const Side& side) const { return &side == &client_ ? "client" : "server"; }

  SessionHost& host_;
  const common::FrontendConfig& frontend_;
  Backend& backend_;
  Side client_, server_;
  common::UvHandle<uv_timer_t> timer_;
  SessionPhase phase_ = SessionPhase::Connecting;
  int serverIndex_ = -1;
  std::vector<int> tried_;
  uint64_t lastActivity_ = 0;
  uint64_t idleTimeoutMs_ = 0;
};

}  // namespace molt::worker
