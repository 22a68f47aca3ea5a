// A worker process: one libuv loop serving one generation's frontends.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/bundle.hpp"
#include "common/config.hpp"
#include "common/control.hpp"
#include "common/control_messages.hpp"
#include "common/proc_memory.hpp"
#include "common/uv_handle.hpp"
#include "shm/server_state.hpp"
#include "shm/session_cache.hpp"
#include "shm/ticket_keys.hpp"
#include "worker/backend.hpp"
#include "worker/frontend.hpp"
#include "worker/http/access_log.hpp"
#include "worker/http/router.hpp"
#include "worker/net/buffer_pool.hpp"
#include "worker/net/parking.hpp"
#include "worker/server_pool.hpp"
#include "worker/session.hpp"
#include "worker/tls/context.hpp"
#include "worker/tls/fleet_sessions.hpp"
#include "worker/tls/stream.hpp"

namespace molt::worker {

namespace control = common::control;

// The control socket's descriptor number in a worker process (set up by the master before exec).
inline constexpr int kControlFd = 3;

// Entry point of `molt --worker`: runs until drained or stopped. Returns the exit status.
int runWorker(int controlFd);

enum class ServingPhase {
  Starting,  // waiting for hello, listeners and start from the master
  Serving,   // accepting on its listeners
  Draining,  // listeners closed; finishing live connections, exits at zero
  Stopped    // everything closed; the loop is ending
};

class Worker final : public SessionHost, public HandshakeObserver {
 public:
  Worker(uv_loop_t* loop, common::UniqueFd control);
  ~Worker() override;

  uv_loop_t* loop() override { return loop_; }
  shm::FrontendRow& frontendStats(std::uint32_t index) noexcept override {
    return stats_ && index < stats_->layout().frontends ? stats_->frontend(index) : unsharedRow_;
  }
  BufferPool& buffers() override { return buffers_; }
  ServerPool& serverPool() override { return *serverPool_; }
  AccessLog& accessLog() override { return *accessLog_; }
  void sessionEnded(Session* session) noexcept override;
  void offerMigration(Session* session, control::MovingConnection connection) noexcept override;
  void http2Changed(int connections, int streams) noexcept override;
  void startHttp2(std::unique_ptr<ClientStream> client,
                  std::shared_ptr<const common::FrontendConfig> frontend,
                  std::shared_ptr<const Router> router, std::string_view input) noexcept override;
  bool park(const common::FrontendConfig& frontend, int fd, std::uint64_t deadline,
            std::unique_ptr<ParkingLot::Cargo>& state) noexcept override;
  bool parkTunnel(int clientFd, int serverFd, std::unique_ptr<ParkedTunnel>& tunnel,
                  std::uint64_t deadline) noexcept override;
  void handshakeStarted() noexcept override { ++handshakes_; }
  void handshakeEnded() noexcept override;

 private:
  void onMessage(common::ControlMessage&& message);
  void onHello(control::Hello& hello);
  void onListener(control::ListenerGrant& grant);
  void onZone(control::ZoneGrant& grant);
  // Runtime API (changes.cpp)
  void onChange(const control::Change& change);
  std::string applyChange(const control::ChangeOp& op);
  std::string replaceCertificate(Frontend& frontend, const std::string& name,
                                 const std::string& pem);
  Frontend* frontendNamed(const std::string& name) const;
  bool buildTlsContexts();
  void buildServing();
  void detachServerState();
  void dropBuildInputs();
  void releaseTables();
  void trimSoon(std::uint64_t delayMs = 100);
  void releaseMemory(const std::optional<common::ProcessMemory>& before);
  void releaseZonesIfQuiet();
  void releaseOpensslIfUnused();
  void onStart();
  void drain(const char* why, bool migrate = false);
  void drainSessions();
  // Connection migration (migration.cpp)
  void offerSessions();
  void onAdopt(control::Adopt& adopt);
  std::unique_ptr<Session> adoptSession(control::MovingConnection& connection,
                                        std::function<void()>& begin, std::string& error);
  void onMigrated(const control::Migrated& answer);
  void refuseOffers(const char* why);
  void logMigrationRound();
  std::uint32_t stayingCount() const;
  void stop(const char* why);
  void accept(Frontend& frontend, uv_stream_t* listener);
  void acceptFailed(Frontend& frontend, int status);
  void keepDescriptorsInReserve();
  std::size_t descriptorsInUse() const;
  void pauseAccepting(const std::string& why);
  void resumeAcceptingIfRoom();
  std::unique_ptr<Session> makeSession(Frontend& frontend, std::unique_ptr<ClientStream> client,
                                       bool http2);
  // A parked connection's client sent bytes or closed (a tunnel's either side, or its deadline
  // came): a new session serves it (accept.cpp).
  void unpark(ParkingLot::Parked parked) noexcept;
  void unparkTunnel(ParkingLot::Parked parked) noexcept;
  void closeParkedTls(int fd, std::unique_ptr<ParkedTls> state) noexcept;
  std::unique_ptr<ClientStream> adoptParked(int fd, std::unique_ptr<ParkedTls> tls,
                                            int& rc) noexcept;
  // Counts a park; trims soon after (trimSoon): a second after a burst, a few after a few.
  void parked() noexcept;
  // Live client connections: sessions and parked ones.
  std::size_t connections() const noexcept { return sessions_.size() + parking_.size(); }
  void connectionCountChanged();
  // Gives each backend without one its row in the stats zone (the file's, then runtime ones).
  void claimStatsRows();
  void sendStats();
  void updateTitle();
  std::string title_;           // the process title last set
  bool titleDraining_ = false;  // title_ is a draining one (it changes as connections end)
  void reapEnded();
  void exitIfIdle();

  uv_loop_t* loop_;
  ServingPhase phase_ = ServingPhase::Starting;
  std::unique_ptr<common::ControlChannel> control_;
  unsigned generation_ = 0, slot_ = 0;
  std::optional<common::Bundle> bundle_;
  std::unique_ptr<common::Config> config_;  // from hello until start: global and tls settings
  common::Millis closeSpread_{0};
  bool built_ = false;  // buildServing ran
  // What the worker serves with. Shared with the sessions that use them: a draining worker lets
  // its own references go, and each table lives as long as a connection needs it.
  std::vector<std::shared_ptr<Backend>> backends_;  // config order, like the server-state zone
  std::unordered_map<std::string, std::shared_ptr<Backend>> backendsByName_;
  std::vector<std::unique_ptr<Frontend>> frontends_;
  BufferPool buffers_;
  std::unique_ptr<ServerPool> serverPool_;
  std::unique_ptr<AccessLog> accessLog_;
  std::unordered_map<const Frontend*, std::shared_ptr<Router>> routers_;  // http frontends
  // TLS: the zones from the master, and a context per frontend with a tls bind.
  std::unique_ptr<shm::SessionCache> sessionCache_;
  std::unique_ptr<shm::TicketKeys> ticketKeys_;
  std::unique_ptr<FleetSessions> fleet_;           // the fleet tier's Redis link, while serving
  std::unique_ptr<shm::ServerState> serverState_;  // health from the master's checks
  // This worker's counters, read by the master for its metrics; a process-local row stands in
  // for a frontend the zone has no row for.
  std::unique_ptr<shm::WorkerStats> stats_;
  shm::FrontendRow unsharedRow_{};
  common::UniqueFd serverTable_;  // until the server-load zone arrives
  std::unordered_map<const Frontend*, std::shared_ptr<TlsContext>> tlsContexts_;
  std::unordered_map<const Frontend*, TlsOptions> tlsOptions_;  // to rebuild a context
  std::vector<std::weak_ptr<TlsContext>> tlsLeft_;  // draining: contexts connections may hold
  bool opensslReleased_ = false;
  unsigned handshakes_ = 0;  // TLS handshakes in progress: a draining worker unmaps at zero
  std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
  // Idle keep-alive connections kept as their descriptor alone (worker/net/parking.hpp).
  ParkingLot parking_;
  std::size_t parkedSinceTrim_ = 0;
  // Migration: sessions offered to the master, by offer id; totals for the master's table; the
  // current round's counts for its log line.
  std::unordered_map<std::uint64_t, Session*> offers_;
  std::unordered_map<Session*, std::uint64_t> offerOf_;  // the same, by session
  std::uint64_t nextOffer_ = 1;
  std::uint64_t migrated_ = 0, adopted_ = 0;
  struct MigrationRound {
    std::size_t offered = 0, moved = 0, refused = 0;
    std::string lastRefusal;
  } round_;
  bool migrating_ = false;   // drained with migration on
  bool refuseSoon_ = false;  // offers made with no master to take them: refused next check
  // Tests only: a worker that gets an "adopt" while this file exists deletes it and dies at
  // once (MOLT_TEST_KILL_ON_ADOPT), to prove a receiver's death loses nothing.
  std::string killOnAdopt_;
  std::vector<std::unique_ptr<Session>> ended_;
  common::UvHandle<uv_check_t> reaper_;
  common::UvHandle<uv_timer_t> statsTimer_;
  common::UvHandle<uv_timer_t> titleTimer_;
  common::UvHandle<uv_timer_t> trimTimer_;  // draining: gives freed tables back to the kernel
  common::UvHandle<uv_signal_t> sigterm_;
  uint64_t hardStopAtMs_ = 0;  // loop time of the master's hard stop; 0: unknown
  bool statsDirty_ = false;
  long http2Connections_ = 0, http2Streams_ = 0;  // Http2Sessions and their open streams
  // Accepting pauses when fewer than kDescriptorReserve descriptors are left under the limit
  // (each accepted connection may need a second one, for its server).
  static constexpr std::size_t kDescriptorReserve = 32;
  static constexpr uint64_t kPauseRetryMs = 100;
  static constexpr uint64_t kPauseLogMs = 10'000;
  std::size_t descriptorLimit_ = 0;
  uint64_t nextPauseLogMs_ = 0;
  common::UvHandle<uv_timer_t> acceptTimer_;
};

}  // namespace molt::worker
