// One proxied TCP connection: client <-> chosen server, spliced both ways.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "worker/backend.hpp"
#include "worker/net/buffer_pool.hpp"
#include "worker/net/client_stream.hpp"
#include "worker/net/plain_stream.hpp"
#include "worker/parked_tunnel.hpp"
#include "worker/session.hpp"

namespace molt::worker {

// Lifecycle of a session.
enum class SessionPhase {
  Connecting,  // client accepted, a server connect is in progress (maybe a retry)
  Splicing,    // bytes flow both ways; half-closes propagate
  Done         // closed; the host destroys it
};

// Takes an accepted client stream from the worker. Reads from one side are written to the other
// with backpressure (reading stops while the other side's write queue is above kHighWater), EOF
// is forwarded as a shutdown, and the session ends when both directions are finished, on any
// error, or after `idle` without a byte either way.
class TcpSession final : public Session, private StreamHandler {
 public:
  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr size_t kLowWater = 64 * 1024;

  TcpSession(SessionHost& host, std::shared_ptr<const common::FrontendConfig> frontend,
             std::shared_ptr<Backend> backend, std::unique_ptr<ClientStream> client);
  ~TcpSession() override;
  TcpSession(const TcpSession&) = delete;
  TcpSession& operator=(const TcpSession&) = delete;

  // Starts the first server connect.
  void start() override;
  void abort() noexcept override { finish("stopped"); }
  // Tunnels stay open through a drain, or move (migrateWhenClean).
  void drain(common::Millis) noexcept override {}
  void migrateWhenClean() noexcept override;
  void migrationAnswered(bool taken) noexcept override;
  bool movable() const noexcept override { return !clientStream_->secure(); }
  // A connection another worker let go: `server` is its connected server socket (counted on
  // server `serverIndex` of the backend when >= 0). Splices at once, as after a connect. Also
  // runs an http frontend's tunnel (a websocket) adopted after its upgrade.
  void startAdopted(std::unique_ptr<PlainStream> server, int serverIndex);
  // A connection this worker parked woke: served on from here, as if it had never stopped.
  void resume(std::unique_ptr<PlainStream> server, std::unique_ptr<ParkedTunnel> tunnel);
  SessionPhase phase() const { return phase_; }

  // How long a moving session waits for its queued bytes to be written (see HttpSession).
  static constexpr uint64_t kMoveFlushMs = 1000;

 private:
  struct Side {
    ClientStream* stream = nullptr;
    bool eof = false;       // this side sent FIN: nothing more will be read from it
    bool shutdown = false;  // we forwarded the other side's FIN to this side (completed)
    bool paused = false;    // reading stopped because the other side's queue is full
  };

  void onStreamData(ClientStream& stream, char* buffer, std::size_t length) noexcept override;
  void onStreamEnd(ClientStream& stream, int status) noexcept override;
  void onStreamWritten(ClientStream& stream, int status) noexcept override;
  void onStreamShutdown(ClientStream& stream, int status) noexcept override;
  void onStreamConnected(ClientStream& stream, int status) noexcept override;

  void connectNext();
  void startSplicing();
  void startReading(Side& side);
  void forwardEof(Side& from);
  void armTimer(uint64_t timeoutMs);
  // The idle timeout, or parking when it comes first.
  void armIdleTimer(uint64_t now);
  void onTimer();
  bool mayPark() const noexcept;
  void park();
  void finish(const char* reason) noexcept;
  // Migration: as HttpSession's (worker/http/session.hpp).
  enum class Move { No, Wanted, Flushing, Offered };
  void tryMove();
  void stayAfterAll();
  Side& sideOf(ClientStream& stream) { return &stream == client_.stream ? client_ : server_; }
  Side& other(Side& side) { return &side == &client_ ? server_ : client_; }

  SessionHost& host_;
  // Shared with the worker while it serves; a draining worker lets its own references go, so
  // these keep what this connection uses, and nothing else, alive.
  std::shared_ptr<const common::FrontendConfig> frontend_;
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<ClientStream> clientStream_;
  std::unique_ptr<PlainStream> serverStream_;
  Side client_, server_;
  common::UvHandle<uv_timer_t> timer_;
  SessionPhase phase_ = SessionPhase::Connecting;
  int serverIndex_ = -1;
  std::vector<int> tried_;
  uint64_t lastActivity_ = 0;
  uint64_t idleTimeoutMs_ = 0;
  uint64_t firstByteTimeoutMs_ = 0;  // until the client's first byte
  uint64_t acceptedAt_ = 0;
  bool clientSpoke_ = false;
  bool parkRefused_ = false;  // the host would not park it: served here until it ends
  // Its TLS stream held bytes when it would have parked: tried again after its next bytes.
  bool tlsBusy_ = false;
  uint64_t resumedAt_ = 0;  // woken from the parking lot: not parked again before it reads
  Move move_ = Move::No;
  uint64_t moveSince_ = 0;
};

}  // namespace molt::worker
