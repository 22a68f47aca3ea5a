// HttpSession: one client connection of an http frontend — requests parsed one at a time,
// routed, forwarded to a (pooled) server connection, responses relayed; upgrades become tunnels.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "worker/backend.hpp"
#include "worker/http/access_log.hpp"
#include "worker/http/parser.hpp"
#include "worker/http/rewrite.hpp"
#include "worker/http/router.hpp"
#include "worker/net/client_stream.hpp"
#include "worker/net/output_chain.hpp"
#include "worker/net/plain_stream.hpp"
#include "worker/net/spares.hpp"
#include "worker/parked_tunnel.hpp"
#include "worker/session.hpp"

namespace molt::worker {

// What the connection is doing.
enum class HttpPhase {
  Idle,        // keep-alive between requests, no byte of the next one yet (timeouts.keep_alive)
  Head,        // receiving a request head (timeouts.http_request, then 408)
  Connecting,  // head routed; a server connect (or a retry) is in progress (timeouts.connect)
  Exchange,    // request forwarded, response relayed (timeouts.client / timeouts.server)
  Tunnel,      // after a 101: bytes spliced both ways (the backend's timeouts.tunnel)
  Closing,     // last response queued: FIN after it, then input discarded until EOF or linger
  Done         // ended; the host destroys it
};

// One request at a time: while a request is in flight the client is read only for its body,
// and bytes of a pipelined next request wait (unparsed) until the response is complete, so
// responses go out in order. Bodies stream both ways with backpressure (reading one side stops
// while the other side's write queue is above kHighWater). Owns its client stream and, during an
// exchange, a server connection that goes back to the worker's ServerPool when reusable.
class HttpSession final : public Session,
                          public spares::Recycled<HttpSession>,
                          private StreamHandler,
                          private BodySink {
 public:
  static constexpr std::size_t kHighWater = 256 * 1024;
  static constexpr std::size_t kLowWater = 64 * 1024;
  // After our FIN, how long input is still read and dropped: closing with unread input makes
  // the kernel send a reset that can destroy the response before the client read it.
  static constexpr std::uint64_t kLingerMs = 1000;

  // `http2`: a client that opens with the HTTP/2 preface becomes an Http2Session (the bind
  // accepts HTTP/2).
  HttpSession(SessionHost& host, std::shared_ptr<const common::FrontendConfig> frontend,
              std::shared_ptr<const Router> router, std::unique_ptr<ClientStream> client,
              bool http2 = false);
  ~HttpSession() override;
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  // Starts reading the first request.
  void start() override;
  void abort() noexcept override { finish("stopped"); }
  void drain(common::Millis idleCloseDelay) noexcept override;
  void migrateWhenClean() noexcept override;
  void migrationAnswered(bool taken) noexcept override;
  bool movable() const noexcept override { return client_ && !client_->secure(); }
  // A connection another worker let go (migration.cpp): served from here as if accepted, with
  // `input` (bytes of its next request(s), at most one pool buffer) already read.
  void startAdopted(std::string_view input);
  // A tunnel this worker parked (tunnel.cpp) woke: served on from here, `server` its server
  // connection, as if it had never stopped.
  void resumeTunnel(std::unique_ptr<PlainStream> server, std::unique_ptr<ParkedTunnel> tunnel);
  // HTTP/2 (worker/http2/session.cpp): a session whose stream's exchange is over serves the
  // connection's next stream as the next request of a keep-alive connection, instead of a new
  // session per stream. parkable(): idle between requests with nothing buffered or owed.
  // parkClient() gives the finished stream back and parks: no timer, no client, until
  // adoptClient(next stream).
  bool parkable() const noexcept;
  std::unique_ptr<ClientStream> parkClient() noexcept;
  void adoptClient(std::unique_ptr<ClientStream> client);
  HttpPhase phase() const { return phase_; }

  // How long a session waits for its queued bytes to be written before it moves; past it, the
  // peer is not reading and the connection stays.
  static constexpr std::uint64_t kMoveFlushMs = 1000;

 private:
  // The client-to-server half of the current exchange.
  enum class RequestState {
    Head,     // head not complete yet
    Body,     // head complete; body (maybe empty) not yet all read
    Complete  // the whole request was read
  };
  // The server-to-client half of the current exchange.
  enum class ResponseState {
    None,     // no server involved (yet), or a local response
    Waiting,  // request sent (or being sent); no final response head yet
    Body,     // final head sent to the client; body being relayed
    Complete  // the whole response was queued to the client
  };
  // Client bytes read but not yet consumed, in one pooled buffer.
  struct Input {
    char* buffer = nullptr;
    std::uint32_t offset = 0, end = 0;
    std::uint32_t size() const { return end - offset; }
  };

  // StreamHandler: dispatch by stream and phase (http_session.cpp).
  void onStreamData(ClientStream& stream, char* buffer, std::size_t length) noexcept override;
  void onStreamEnd(ClientStream& stream, int status) noexcept override;
  void onStreamWritten(ClientStream& stream, int status) noexcept override;
  void onStreamShutdown(ClientStream& stream, int status) noexcept override;
  void onStreamConnected(ClientStream& stream, int status) noexcept override;
  // BodySink: a chunked response re-framed for an HTTP/1.0 client.
  void onBodyData(const char* data, std::size_t length) noexcept override;

  // Client side (http_request.cpp).
  void onClientData(char* buffer, std::size_t length);
  void onClientEnd(int status);
  bool startsHttp2() const;
  void becomeHttp2();
  void processRequest();
  void parseRequestBody();
  void onRequestHead();
  std::shared_ptr<Backend> routeRequest();
  void forwardRequestBytes(std::size_t consumed);
  void respondLocal(int status, const char* why, bool mustClose);
  void releaseInput();
  void updateClientReading();

  // Server side (http_response.cpp).
  void connectServer();
  void onConnectFailed(const char* what);
  void onServerReady();
  void onServerData(char* buffer, std::size_t length);
  void onServerEnd(int status);
  void parseResponse(char* buffer, std::uint32_t offset, std::uint32_t end);
  bool onResponseHead(char* buffer, std::uint32_t& offset, std::uint32_t end);
  ResponseFraming responseFraming();
  void onServerFailed(const char* why);
  bool canRepeatRequest() const;
  bool canRetryOnFreshConnection() const;
  void endExchange();
  void releaseServer(bool reusable);
  void queueOut(BufferSlice slice);
  void queueOut(OutputChain& chain);
  bool flushOut();  // false: the session ended (client write failed)

  // Tunnel (http_tunnel.cpp).
  void startTunnel(char* buffer, std::uint32_t offset, std::uint32_t end);
  void onTunnelData(ClientStream& from, char* buffer, std::size_t length);
  void onTunnelEnd(ClientStream& from, int status);
  void onTunnelWritten(ClientStream& to);
  void onTunnelShutdown(ClientStream& to);
  std::uint64_t tunnelActive() const { return std::max(clientActive_, serverActive_); }
  // Idle both ways for kParkAfterMs, and served as long since the tunnel began or woke (a woken
  // tunnel reads what woke it before it may park again).
  std::uint64_t tunnelParksAt() const {
    return std::max(tunnelActive(), phaseSince_) + kParkAfterMs;
  }
  bool mayParkTunnel() const noexcept;
  void parkTunnel();

  // Migration (migration.cpp).
  enum class Move {
    No,        // serving here (the default, and after a refused or impossible move)
    Wanted,    // move at the next clean boundary
    Flushing,  // reading stopped; waiting for queued bytes to be written
    Offered    // handed to the master; waiting for the answer
  };
  bool atCleanBoundary() const;
  void tryMove();
  void offerMove();
  void stayAfterAll();

  // Lifecycle, timers, log (http_session.cpp).
  void beginRequest();
  bool mayPark() const noexcept;
  void park();
  void startClosing();
  void armTimer();
  std::uint64_t deadline() const;
  bool waitingOnServer() const;
  bool waitingOnClient() const;
  void onTimer();
  void logExchange(const char* termination);
  // Adds the exchange to the frontend's and backend's counters (shm/worker_stats.hpp).
  void count(const AccessRecord& record) noexcept;
  void finish(const char* reason) noexcept;
  std::int64_t sinceStart(std::uint64_t at) const;

  SessionHost& host_;
  // Shared with the worker while it serves (see TcpSession). The router goes once the session
  // routes no more requests (a tunnel); the backend is the current exchange's.
  std::shared_ptr<const common::FrontendConfig> frontend_;
  std::shared_ptr<const Router> router_;
  std::unique_ptr<ClientStream> client_;
  std::unique_ptr<PlainStream> server_;
  common::UvHandle<uv_timer_t> timer_;
  HttpPhase phase_ = HttpPhase::Head;
  RequestState request_ = RequestState::Head;
  ResponseState response_ = ResponseState::None;
  HttpParser requestParser_{HttpParser::Kind::Request};
  HttpParser responseParser_{HttpParser::Kind::Response};
  Input input_;
  OutputChain chain_;  // heads and re-framed bytes being composed
  std::array<BufferSlice, ClientStream::kMaxSlices> out_{};  // queued for one client write
  std::size_t outCount_ = 0;
  std::string clientAddress_;  // "ip:port" for the log
  std::string clientIp_;       // "ip" for X-Forwarded-For
  std::string upstreamHost_;   // the host routed on, port kept: the Host sent upstream

  // The current exchange.
  std::shared_ptr<Backend> backend_;
  int serverIndex_ = -1;
  std::uint32_t serverEpoch_ = 0;  // the server's addressEpoch when server_ was made
  // The last server tried, for the log (its name is read at log time: the backend may have
  // copied it out of a zone a draining worker unmapped since).
  int lastServer_ = -1;
  std::vector<int> tried_;
  bool reused_ = false;          // server_ came from the pool
  bool retriedFresh_ = false;    // a failed pooled connection was already replaced once
  bool serverReusable_ = false;  // server_ may go back to the pool when the exchange ends
  bool closeAfter_ = false;      // close the client connection after this response
  bool headRequest_ = false;
  bool logged_ = false;
  bool http2_ = false;        // the bind accepts HTTP/2 (prior knowledge, or ALPN h2)
  bool parkRefused_ = false;  // the host would not park it: not asked again until the next request
  // A tunnel's TLS stream held bytes when it would have parked: tried again after its next bytes.
  bool tlsBusy_ = false;
  // A tunnel that was parked: its upgrade's facts, for its log line and its next park.
  std::unique_ptr<ParkedTunnel> parked_;
  int status_ = 0;
  std::uint64_t bytesIn_ = 0, bytesOut_ = 0, bodySent_ = 0;
  std::uint64_t tStart_ = 0, tHead_ = 0, tConnect_ = 0, tResponse_ = 0;  // uv_hrtime()

  // Timers: activity stamps are loop times (ms); the timer fires at the earliest deadline.
  std::uint64_t timerDue_ = UINT64_MAX;  // loop time the timer is armed for; max: not armed
  std::uint64_t phaseSince_ = 0;
  std::uint64_t clientActive_ = 0, serverActive_ = 0;
  bool clientPaused_ = false, serverPaused_ = false;  // reading stopped for backpressure
  bool draining_ = false;
  std::uint64_t drainCloseAt_ = 0;
  Move move_ = Move::No;
  std::uint64_t moveSince_ = 0;  // loop time Flushing began
  // Ends of input (the client's may come after a complete request) and, in a tunnel, FINs sent.
  bool clientEof_ = false, serverEof_ = false;
  bool clientShut_ = false, serverShut_ = false;
};

}  // namespace molt::worker
