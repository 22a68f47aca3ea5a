// HttpSession, server side: choosing a server and getting a connection to it (pooled or new,
// with retries), sending the request head, relaying the response, and ending the exchange.
#include "common/log.hpp"
#include "worker/http/rewrite.hpp"
#include "worker/http/session.hpp"
#include "worker/server_pool.hpp"

namespace molt::worker {

void HttpSession::connectServer() {
  releaseServer(false);
  phase_ = HttpPhase::Connecting;
  phaseSince_ = uv_now(host_.loop());
  bool mustClose = request_ != RequestState::Complete;
  auto attempts = static_cast<unsigned>(tried_.size());
  int index =
      attempts <= backend_->config().retries ? backend_->pick(tried_, &client_->peer()) : -1;
  if (index < 0 && tried_.empty()) return respondLocal(503, "no server available", mustClose);
  if (index < 0) return respondLocal(502, "no server could be reached", true);
  tried_.push_back(index);
  serverIndex_ = index;
  Server& server = backend_->server(index);
  serverEpoch_ = server.addressEpoch;
  lastServer_ = index;
  backend_->connectionOpened(index);
  if (!retriedFresh_) {
    if (auto pooled = host_.serverPool().take(&server)) {
      server_ = std::move(pooled);
      reused_ = true;
      return onServerReady();
    }
  }
  reused_ = false;
  server_ = std::make_unique<PlainStream>(host_.loop(), host_.buffers());
  server_->setHandler(this);
  armTimer();
  if (int rc = server_->connect(backend_->serverAddress(index)); rc < 0)
    onConnectFailed(uv_strerror(rc));
}

void HttpSession::onConnectFailed(const char* what) {
  common::log::warn("connect(backend {} server {} {}): {}", backend_->name(),
                    backend_->serverName(serverIndex_),
                    backend_->serverAddress(serverIndex_).text(), what);
  connectServer();
}

void HttpSession::onServerReady() {
  phase_ = HttpPhase::Exchange;
  tConnect_ = uv_hrtime();
  serverActive_ = clientActive_ = uv_now(host_.loop());
  server_->setHandler(this);
  responseParser_.reset();
  responseParser_.setNoBody(headRequest_);
  responseParser_.setBodySink(nullptr);
  response_ = ResponseState::Waiting;
  serverReusable_ = true;
  chain_.clear();
  writeRequestHead(requestParser_.head(),
                   ForwardedInfo{clientIp_, client_->secure(), upstreamHost_}, chain_);
  if (chain_.overflowed()) return respondLocal(431, "head too large once rewritten", true);
  int rc = server_->write(chain_.slices());
  chain_.release();
  if (rc < 0) return onServerFailed(uv_strerror(rc));
  if (int rc2 = server_->startReading(); rc2 < 0) return onServerFailed(uv_strerror(rc2));
  if (request_ == RequestState::Body) return parseRequestBody();
  armTimer();
}

void HttpSession::onServerData(char* buffer, std::size_t length) {
  if (response_ != ResponseState::Waiting && response_ != ResponseState::Body) {
    // Bytes after the response: the connection is out of step and cannot be reused.
    host_.buffers().give(buffer);
    serverReusable_ = false;
    return;
  }
  parseResponse(buffer, 0, static_cast<std::uint32_t>(length));
}

void HttpSession::parseResponse(char* buffer, std::uint32_t offset, std::uint32_t end) {
  while (response_ == ResponseState::Waiting) {
    ParseResult r = responseParser_.feed(buffer + offset, end - offset);
    if (r.status != ParseStatus::HeadComplete) {
      host_.buffers().give(buffer);
      if (r.status == ParseStatus::NeedMore) return;
      return onServerFailed(responseParser_.error().reason);
    }
    offset += static_cast<std::uint32_t>(r.consumed);
    if (!onResponseHead(buffer, offset, end)) return;
  }
  ParseResult r = responseParser_.feed(buffer + offset, end - offset);
  if (r.status == ParseStatus::Error) {
    host_.buffers().give(buffer);
    flushOut();
    return finish(responseParser_.error().reason);
  }
  bool complete = r.status == ParseStatus::MessageComplete;
  auto consumed = static_cast<std::uint32_t>(complete ? r.consumed : end - offset);
  if (complete && offset + consumed < end) serverReusable_ = false;  // bytes nobody asked for
  if (consumed > 0 && !responseParser_.decoding()) {
    bytesOut_ += consumed;
    queueOut(BufferSlice{buffer, offset, consumed});
  } else {
    host_.buffers().give(buffer);
  }
  if (!flushOut()) return;
  if (complete) {
    response_ = ResponseState::Complete;
    return endExchange();
  }
  if (client_->queuedBytes() > kHighWater) {
    serverPaused_ = true;
    server_->stopReading();
  }
  armTimer();
}

// Acts on a complete response head. Returns whether parsing goes on in `buffer` (false: the
// buffer was handed on or given back and the exchange took another turn).
bool HttpSession::onResponseHead(char* buffer, std::uint32_t& offset, std::uint32_t end) {
  const HttpHead& head = responseParser_.head();
  const HttpHead& request = requestParser_.head();
  bool client11 = request.versionMinor() == 1;
  int status = head.status();
  if (status == 101) {
    if (request.upgrade) {
      startTunnel(buffer, offset, end);
    } else {
      host_.buffers().give(buffer);
      onServerFailed("101 to a request without Upgrade");
    }
    return false;
  }
  if (status / 100 == 1) {
    // Interim (100 Continue, 103 Early Hints): relayed to HTTP/1.1 clients, then the real one.
    if (client11) {
      chain_.clear();
      writeResponseHead(head, ResponseFraming{}, chain_);
      bytesOut_ += chain_.size();
      queueOut(chain_);
    }
    responseParser_.reset();
    responseParser_.setNoBody(headRequest_);
    return true;
  }
  tResponse_ = uv_hrtime();
  status_ = status;
  if (!head.keepAlive) serverReusable_ = false;
  if (request.upgrade) closeAfter_ = true;  // declined: what the client sends next may not be HTTP
  ResponseFraming framing = responseFraming();
  chain_.clear();
  writeResponseHead(head, framing, chain_);
  bytesOut_ += chain_.size();
  queueOut(chain_);
  response_ = ResponseState::Body;
  return true;
}

// How the final response goes to the client (see docs/http.md, Bodies), and whether the client
// connection can stay open after it.
ResponseFraming HttpSession::responseFraming() {
  const HttpHead& head = responseParser_.head();
  bool client11 = requestParser_.head().versionMinor() == 1;
  ResponseFraming framing;
  bool body = !headRequest_ && head.status() != 204 && head.status() != 304;
  if (!body) {
    framing.chunked = head.chunked && client11;
  } else if (head.chunked && client11) {
    framing.chunked = true;
  } else if (head.chunked) {
    responseParser_.setBodySink(this);  // HTTP/1.0 client: de-chunked, delimited by the close
    closeAfter_ = true;
  } else if (head.bodyUntilEof) {
    closeAfter_ = true;
  }
  framing.close = closeAfter_;
  framing.keepAlive = !closeAfter_ && !client11;
  return framing;
}

void HttpSession::onBodyData(const char* data, std::size_t length) noexcept {
  chain_.clear();
  chain_.append(std::string_view(data, length));
  bytesOut_ += chain_.size();
  queueOut(chain_);
}

void HttpSession::onServerEnd(int status) {
  if (status == UV_EOF && response_ == ResponseState::Body && responseParser_.head().bodyUntilEof) {
    serverReusable_ = false;
    responseParser_.finish();
    response_ = ResponseState::Complete;
    return endExchange();
  }
  onServerFailed(status == UV_EOF ? "server closed the connection" : uv_strerror(status));
}

void HttpSession::onServerFailed(const char* why) {
  serverReusable_ = false;
  if (response_ == ResponseState::Waiting || phase_ == HttpPhase::Connecting) {
    if (canRetryOnFreshConnection()) {
      retriedFresh_ = true;
      tried_.pop_back();
      return connectServer();
    }
    // A new connection that failed before any response (the server died with the request, or
    // reset it): the next server, as a connect failure would, while retries are left.
    if (phase_ == HttpPhase::Exchange && canRepeatRequest() &&
        tried_.size() <= backend_->config().retries) {
      common::log::warn("backend {} server {}: {} before responding; request retried",
                        backend_->name(), backend_->serverName(serverIndex_), why);
      return connectServer();
    }
    return respondLocal(502, why, true);
  }
  // The response head is out: nothing correct can be said to the client any more.
  flushOut();
  finish(why);
}

void HttpSession::endExchange() {
  if (request_ != RequestState::Complete) closeAfter_ = true;  // answered before the body ended
  bool reusable = serverReusable_ && request_ == RequestState::Complete && server_ &&
                  server_->queuedBytes() == 0;
  logExchange(nullptr);
  releaseServer(reusable);
  if (closeAfter_) return startClosing();
  beginRequest();
}

void HttpSession::releaseServer(bool reusable) {
  if (serverIndex_ >= 0) {
    Server& server = backend_->server(serverIndex_);
    backend_->connectionClosed(serverIndex_);
    // A connection made before the server's address changed goes to no pool.
    if (reusable && server_ && server.addressEpoch == serverEpoch_)
      host_.serverPool().give(&server, std::move(server_));
    serverIndex_ = -1;
  }
  server_.reset();
  serverPaused_ = false;
}

void HttpSession::queueOut(BufferSlice slice) {
  if (outCount_ == out_.size()) flushOut();
  out_[outCount_++] = slice;
}

void HttpSession::queueOut(OutputChain& chain) {
  for (const BufferSlice& s : chain.slices()) queueOut(s);
  chain.release();
}

bool HttpSession::flushOut() {
  if (outCount_ == 0) return phase_ != HttpPhase::Done;
  clientActive_ = uv_now(host_.loop());  // the client timeout counts from the last progress
  int rc = client_->write({out_.data(), outCount_});
  outCount_ = 0;
  if (rc < 0) finish(uv_strerror(rc));
  return phase_ != HttpPhase::Done;
}

}  // namespace molt::worker
