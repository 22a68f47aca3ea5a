// HttpConnection: one client connection on an HTTP listener — llhttp parsing, responses in
// request order (so keep-alive and pipelining work), and the switch to a websocket echo.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/uv_handle.hpp"
#include "tools/origin/connection.hpp"
#include "tools/origin/websocket.hpp"

namespace molt::origin {

// Counters served by GET /stats. Connections are those accepted on HTTP listeners (tcp-echo ones
// are not counted), including the one carrying the /stats request; requests are counted when
// their headers are complete, so the /stats request counts itself too.
struct HttpStats {
  std::uint64_t connectionsTotal = 0;
  std::uint64_t connectionsOpen = 0;
  std::uint64_t requestsTotal = 0;
};

// What every HTTP connection of the process shares; outlives them all.
struct HttpShared {
  std::string name;  // sent as X-Origin on every response
  HttpStats stats;
};

class HttpConnection final : public Connection {
 public:
  HttpConnection(ConnectionSet& set, HttpShared& shared);
  ~HttpConnection() override;

 private:
  enum class Phase {
    Http,       // parsing requests, answering them one at a time in order
    WebSocket,  // after 101: every byte goes to the frame echo
    Draining,   // last response queued: FIN after it, input discarded until EOF or linger timeout
  };
  // The response still being produced for the current request.
  enum class Pending {
    None,      // nothing: the next request may be parsed
    Echo,      // /echo: headers sent, each body piece is echoed until the request ends
    Size,      // /size/N: produceSize() sends more as the write queue drains
    Slow,      // /slow: the timer will send the whole response
    SlowBody,  // /slow-body: headers sent, the timer sends one chunk per tick
  };

  // The request being parsed or answered. Its strings are freed when it is answered.
  struct Request {
    std::string target;
    std::string headers;  // "Name: value\n" per field, as received, in order
    std::size_t lineStart = 0;
    std::size_t valueStart = 0;
    std::size_t keyStart = 0;  // Sec-WebSocket-Key value inside `headers`
    std::size_t keyLength = 0;
    bool upgradeWebsocket = false;
    bool expectContinue = false;
    bool head = false;
    bool http11 = true;
    bool inMessage = false;  // between message begin and message complete
    bool complete = false;   // message complete, response possibly still pending
  };
  // Unparsed input kept while the previous request is answered or the write queue is full.
  struct Stash {
    Block* block = nullptr;
    std::size_t offset = 0;
    std::size_t end = 0;
  };

  static const llhttp_settings_t& parserSettings();
  static HttpConnection& of(llhttp_t* parser);

  void onRead(Block* block, std::size_t length) override;
  void onEof() override;
  void onWritten() override;
  void onShutdown() override;
  static void onTimerFired(uv_timer_t* timer);
  void onTimer();

  // Input flow (http_connection.cpp).
  void consume(Block* block, std::size_t offset, std::size_t end);
  void feedWebSocket(Block* block, char* data, std::size_t length);
  bool canParse() const;
  bool wantRead() const;
  void resumeInput();
  void afterIo();
  void startDrain();
  void onParseError(llhttp_errno_t error);
  void startTimer(std::uint64_t ms);

  // llhttp callbacks.
  int onMessageBegin();
  int onTarget(const char* at, std::size_t length);
  int onHeaderField(const char* at, std::size_t length);
  int onHeaderFieldComplete();
  int onHeaderValue(const char* at, std::size_t length);
  int onHeaderValueComplete();
  int onHeadersComplete();
  int onBody(const char* at, std::size_t length);
  int onMessageComplete();
  int appendHead(std::string& to, const char* at, std::size_t length);

  // Responses (http_routes.cpp).
  void route();
  void routeSize(std::string_view count);
  void routeSlow();
  void routeSlowBody();
  void routeStatus(std::string_view code);
  void routeStats();
  void routeWebSocket();
  void startEcho();
  void respond(int status, std::string_view contentType, std::string_view body);
  // Status line and headers; `length` nullopt = chunked (close-delimited for HTTP/1.0).
  void writeHead(int status, std::string_view contentType, std::optional<std::uint64_t> length);
  void writeChunk(Block* owner, const char* data, std::size_t length);
  void endChunks();
  void produceSize();
  void finishResponse();

  HttpShared& shared_;
  llhttp_t parser_;
  Request request_;
  Phase phase_ = Phase::Http;
  Pending pending_ = Pending::None;
  Stash stash_;
  Block* parsing_ = nullptr;  // the block llhttp is reading, while inside llhttp_execute
  bool keepAlive_ = true;
  bool chunked_ = false;
  bool headTooLarge_ = false;
  bool peerEof_ = false;
  bool shutdownSent_ = false;
  bool shutdownDone_ = false;
  std::uint64_t bodyLeft_ = 0;  // Size: bytes still to send; SlowBody: chunks still to send
  std::uint64_t bodyOffset_ = 0;
  std::uint64_t intervalMs_ = 0;
  std::optional<common::UvHandle<uv_timer_t>> timer_;
  WebSocketEcho websocket_;
};

}  // namespace molt::origin
