// Http2Session: one client connection that speaks HTTP/2 (ALPN h2, or the prior-knowledge
// preface on a plaintext bind). nghttp2 does the framing, HPACK, flow control and RFC 9113's
// message checks; each stream is served by an HttpSession over an Http2Stream (stream.hpp),
// so that both front protocols share one exchange.
#pragma once

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "worker/http/router.hpp"
#include "worker/http2/memory.hpp"
#include "worker/net/client_stream.hpp"
#include "worker/session.hpp"

namespace molt::worker {

class Http2Stream;
class HttpSession;

class Http2Session final : public Session, private StreamHandler, private SessionHost {
 public:
  // Client bytes queued for writing above which no more frames are produced.
  static constexpr std::size_t kHighWater = 256 * 1024;
  // Streams the client may reset (RST_STREAM) in a burst, and per second after it, before the
  // connection is closed with ENHANCE_YOUR_CALM (the rapid reset attack, CVE-2023-44487).
  static constexpr double kResetBurst = 200, kResetsPerSecond = 50;
  // After the drain's first GOAWAY (no new streams, please), how long streams the client sent
  // before it read that are still accepted; then the final GOAWAY names the last one.
  static constexpr std::uint64_t kGoawayGraceMs = 1000;
  // After our FIN, how long input is still read and dropped.
  static constexpr std::uint64_t kLingerMs = 1000;
  static constexpr std::uint64_t kLaneKeepMs = 1000;

  Http2Session(SessionHost& host, std::shared_ptr<const common::FrontendConfig> frontend,
               std::shared_ptr<const Router> router, std::unique_ptr<ClientStream> client);
  ~Http2Session() override;
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Serves the connection, `input` (the preface's first bytes) already read.
  void startWith(std::string_view input);
  void start() override { startWith({}); }
  void abort() noexcept override;
  void drain(common::Millis idleCloseDelay) noexcept override;

  // For Http2Stream.
  nghttp2_session* nghttp2() const { return session_; }
  const ClientStream& client() const { return *client_; }
  BufferPool& buffers() override { return host_.buffers(); }
  // Runs the connection's pending work (frames to send, events for streams) from the loop soon.
  void schedule() noexcept;
  void streamGone(Http2Stream& stream) noexcept;
  static ssize_t readCallback(nghttp2_session* session, std::int32_t id, std::uint8_t* buffer,
                              std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                              void* self);

  // Counts for `molt ctl proc`.
  std::size_t streamCount() const { return streams_.size(); }

 private:
  struct Entry {
    std::unique_ptr<Http2Stream> pending;   // before the session takes it
    std::unique_ptr<HttpSession> exchange;  // serves the stream; owns the Http2Stream
    Http2Stream* stream = nullptr;          // while it exists
    bool ended = false;                     // the exchange reported its end
    bool closed = false;                    // nghttp2 closed the stream
    bool answered = false;                  // answered here (431), no exchange
  };

  // StreamHandler (the client connection).
  void onStreamData(ClientStream& stream, char* buffer, std::size_t length) noexcept override;
  void onStreamEnd(ClientStream& stream, int status) noexcept override;
  void onStreamWritten(ClientStream& stream, int status) noexcept override;
  void onStreamShutdown(ClientStream& stream, int status) noexcept override;

  // SessionHost, for the streams' exchanges.
  uv_loop_t* loop() override { return host_.loop(); }
  ServerPool& serverPool() override { return host_.serverPool(); }
  AccessLog& accessLog() override { return host_.accessLog(); }
  void sessionEnded(Session* session) noexcept override;
  void offerMigration(Session*, common::control::MovingConnection) noexcept override {}
  void startHttp2(std::unique_ptr<ClientStream>, std::shared_ptr<const common::FrontendConfig>,
                  std::shared_ptr<const Router>, std::string_view) noexcept override {}

  // nghttp2's callbacks (session.cpp).
  struct Callbacks;
  friend struct Callbacks;
  int onBeginFrame(const nghttp2_frame_hd* hd);
  int onBeginHeaders(const nghttp2_frame* frame);
  int onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value);
  int onFrame(const nghttp2_frame* frame);
  int onData(std::int32_t id, const std::uint8_t* data, std::size_t length);
  int onClose(std::int32_t id, std::uint32_t error);
  void startExchange(Entry& entry);
  void answerLocally(std::int32_t id, int status);
  bool resetAllowed();

  void runPending() noexcept;
  void sendFrames();
  void reap();
  void park(Entry& entry);
  void armTimer();
  void onTimer();
  void closeWhenFlushed();
  void finish() noexcept;
  Entry* find(std::int32_t id);
  common::Millis idleTimeout() const;
  void reportStreams() noexcept;

  SessionHost& host_;
  std::shared_ptr<const common::FrontendConfig> frontend_;
  std::shared_ptr<const Router> router_;
  std::unique_ptr<ClientStream> client_;
  Http2Memory memory_;  // outlives session_ (deleted in the destructor's body)
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, Entry> streams_;
  // Exchanges whose stream is over, parked for the next streams (HttpSession::parkClient): a
  // stream then costs no new session, parsers or timer. Dropped once the connection has had no
  // stream for kLaneKeepMs (when memory_ gives its frame buffer back too), and on drain.
  std::vector<std::unique_ptr<HttpSession>> lanes_;
  common::UvHandle<uv_idle_t> later_;
  common::UvHandle<uv_timer_t> timer_;
  // When timer_ fires (UINT64_MAX: stopped). A later deadline leaves it as it is: onTimer
  // finds nothing due and arms it again, so a stream opening and closing costs no timer calls.
  std::uint64_t timerDue_ = UINT64_MAX;
  std::uint64_t idleSince_ = 0;  // loop time the last stream closed (or the connection began)
  std::uint64_t goawayAt_ = 0;   // draining: when the final GOAWAY goes out
  double resetTokens_ = kResetBurst;
  std::uint64_t resetStamp_ = 0;
  std::uint64_t closeBy_ = 0;  // closing: the moment to give up on the peer
  bool running_ = false;       // inside runPending
  bool again_ = false;         // work arrived while running
  bool shutdownSent_ = false;
  bool lingering_ = false;  // FIN sent; reading only to drop input
  std::int32_t lastStreamId_ = 0;
  int reported_ = 0;  // streams counted in the worker's stats
  bool draining_ = false;
  bool finalGoaway_ = false;
  bool closing_ = false;  // no more reading; FIN once everything queued is written
  bool done_ = false;
};

}  // namespace molt::worker
