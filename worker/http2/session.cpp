#include "worker/http2/session.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "common/log.hpp"
#include "worker/http/session.hpp"
#include "worker/http2/stream.hpp"
#include "worker/net/buffer_pool.hpp"

namespace molt::worker {
namespace {

std::uint64_t ms(common::Millis d) {
  return static_cast<std::uint64_t>(d.count());
}

Http2Session& of(void* self) {
  return *static_cast<Http2Session*>(self);
}

std::string_view text(const std::uint8_t* data, std::size_t length) {
  return {reinterpret_cast<const char*>(data), length};
}

}  // namespace

struct Http2Session::Callbacks {
  static int beginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* self) {
    return of(self).onBeginFrame(hd);
  }
  static int beginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    return of(self).onBeginHeaders(frame);
  }
  static int header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                    std::size_t nameLength, const std::uint8_t* value, std::size_t valueLength,
                    std::uint8_t, void* self) {
    return of(self).onHeader(frame, text(name, nameLength), text(value, valueLength));
  }
  static int frame(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    return of(self).onFrame(frame);
  }
  static int data(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data,
                  std::size_t length, void* self) {
    return of(self).onData(id, data, length);
  }
  static int close(nghttp2_session*, std::int32_t id, std::uint32_t error, void* self) {
    return of(self).onClose(id, error);
  }
};

Http2Session::Http2Session(SessionHost& host,
                           std::shared_ptr<const common::FrontendConfig> frontend,
                           std::shared_ptr<const Router> router,
                           std::unique_ptr<ClientStream> client)
    : host_(host),
      frontend_(std::move(frontend)),
      router_(std::move(router)),
      client_(std::move(client)) {
  client_->setHandler(this);
  host_.http2Changed(1, 0);
  uv_idle_init(host_.loop(), later_.get());
  later_->data = this;
  uv_timer_init(host_.loop(), timer_.get());
  timer_->data = this;

  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, Callbacks::beginFrame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, Callbacks::beginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, Callbacks::header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, Callbacks::frame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, Callbacks::data);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, Callbacks::close);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Window credit is returned once the exchange took the bytes: a slow server never makes the
  // proxy hold more of an upload than one window.
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_max_outbound_ack(option, 1000);
  nghttp2_session_server_new3(&session_, callbacks, this, option, memory_.mem());
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);

  const common::Http2Config& c = frontend_->http2;
  std::array<nghttp2_settings_entry, 4> settings{{
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c.maxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c.initialWindowSize},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c.maxHeaderListSize},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  }};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  // The connection's window: every stream's at once, within 16 MiB.
  std::uint64_t window = std::min<std::uint64_t>(
      std::uint64_t{c.initialWindowSize} * c.maxConcurrentStreams, 16u << 20);
  window = std::max<std::uint64_t>(window, c.initialWindowSize);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(window));
}

Http2Session::~Http2Session() {
  done_ = true;
  streams_.clear();  // exchanges first: their streams report to this session as they go
  lanes_.clear();
  nghttp2_session_del(session_);
}

void Http2Session::startWith(std::string_view input) {
  idleSince_ = uv_now(host_.loop());
  if (!input.empty()) {
    ssize_t rc = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
    if (rc < 0) closing_ = true;
  }
  if (int rc = client_->startReading(); rc < 0) return finish();
  armTimer();
  schedule();
}

void Http2Session::abort() noexcept {
  finish();
}

// No new streams: GOAWAY at once with the largest id (a hint the client acts on), then after
// kGoawayGraceMs the final one with the last stream taken; the streams in flight finish, and the
// connection closes once none is left.
void Http2Session::drain(common::Millis idleCloseDelay) noexcept {
  (void)idleCloseDelay;
  if (draining_ || done_) return;
  draining_ = true;
  lanes_.clear();
  nghttp2_submit_shutdown_notice(session_);
  goawayAt_ = uv_now(host_.loop()) + kGoawayGraceMs;
  armTimer();
  schedule();
}

// ---- the client connection ----

void Http2Session::onStreamData(ClientStream&, char* buffer, std::size_t length) noexcept {
  if (lingering_) return host_.buffers().give(buffer);
  ssize_t rc =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(buffer), length);
  host_.buffers().give(buffer);
  if (rc < 0) {
    // nghttp2 queued the GOAWAY the error calls for (or the peer flooded us): send what is
    // queued and close.
    closing_ = true;
    client_->stopReading();
  }
  runPending();
}

void Http2Session::onStreamEnd(ClientStream&, int status) noexcept {
  (void)status;
  finish();
}

void Http2Session::onStreamWritten(ClientStream&, int status) noexcept {
  if (status < 0) return finish();
  runPending();
}

// After our FIN, input is read and dropped for kLingerMs: closing with unread input makes the
// kernel send a reset that can destroy our last frames (a GOAWAY) before the client read them.
void Http2Session::onStreamShutdown(ClientStream&, int status) noexcept {
  if (status < 0 || client_->startReading() < 0) return finish();
  lingering_ = true;
  closeBy_ = uv_now(host_.loop()) + kLingerMs;
  armTimer();
}

// ---- nghttp2's callbacks: they record; the exchanges hear of it in runPending ----

// RFC 9113 section 5.1.1: a client's new stream ids only grow. nghttp2 ignores a HEADERS frame
// on a lower id it no longer knows; it is a connection error.
int Http2Session::onBeginFrame(const nghttp2_frame_hd* hd) {
  if (hd->type != NGHTTP2_HEADERS || !(hd->stream_id & 1)) return 0;
  if (hd->stream_id > lastStreamId_) {
    lastStreamId_ = hd->stream_id;
  } else if (!nghttp2_session_find_stream(session_, hd->stream_id)) {
    nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    closing_ = true;
  }
  return 0;
}

int Http2Session::onBeginHeaders(const nghttp2_frame* frame) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  std::int32_t id = frame->hd.stream_id;
  Entry& entry = streams_[id];
  entry.pending = std::make_unique<Http2Stream>(*this, id, client_->secure(), client_->peer(),
                                                frontend_->http2.maxHeaderListSize);
  entry.stream = entry.pending.get();
  return 0;
}

int Http2Session::onHeader(const nghttp2_frame* frame, std::string_view name,
                           std::string_view value) {
  Entry* entry = find(frame->hd.stream_id);
  if (entry && entry->stream) entry->stream->onField(name, value);
  return 0;
}

int Http2Session::onFrame(const nghttp2_frame* frame) {
  std::int32_t id = frame->hd.stream_id;
  Entry* entry = find(id);
  bool endStream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (!entry || !entry->stream) return 0;
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        entry->stream->onHeadersEnd(endStream);
        if (entry->stream->headerListTooLarge())
          answerLocally(id, 431);
        else
          startExchange(*entry);
      } else if (endStream) {
        entry->stream->onRequestEnd();  // after the trailers
      }
      return 0;
    case NGHTTP2_DATA:
      if (entry && entry->stream && endStream) entry->stream->onRequestEnd();
      return 0;
    case NGHTTP2_RST_STREAM:
      if (!resetAllowed()) {
        common::log::warn("http2 {}: streams reset faster than {}/s: closing the connection",
                          client_->peer().text(), kResetsPerSecond);
        nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
        closing_ = true;
      }
      return 0;
    default:
      return 0;
  }
}

int Http2Session::onData(std::int32_t id, const std::uint8_t* data, std::size_t length) {
  Entry* entry = find(id);
  if (entry && entry->stream && !entry->stream->closed()) {
    entry->stream->onBody(data, length);
  } else {
    nghttp2_session_consume(session_, id, length);  // nobody reads it: credit at once
  }
  return 0;
}

int Http2Session::onClose(std::int32_t id, std::uint32_t error) {
  Entry* entry = find(id);
  if (!entry) return 0;
  entry->closed = true;
  if (entry->stream) entry->stream->onClosed(error);
  entry->pending.reset();  // a stream closed before its headers ended
  if (!entry->exchange) streams_.erase(id);
  schedule();
  return 0;
}

// A token bucket: kResetBurst resets at once, kResetsPerSecond after that.
bool Http2Session::resetAllowed() {
  std::uint64_t now = uv_now(host_.loop());
  resetTokens_ = std::min(kResetBurst, resetTokens_ + static_cast<double>(now - resetStamp_) *
                                                          kResetsPerSecond / 1000.0);
  resetStamp_ = now;
  if (resetTokens_ < 1) return false;
  resetTokens_ -= 1;
  return true;
}

void Http2Session::startExchange(Entry& entry) {
  if (!lanes_.empty()) {
    entry.exchange = std::move(lanes_.back());
    lanes_.pop_back();
    entry.exchange->adoptClient(std::move(entry.pending));
    return;
  }
  SessionHost& host = *this;  // a private base: named here, where it is accessible
  entry.exchange =
      std::make_unique<HttpSession>(host, frontend_, router_, std::move(entry.pending));
  entry.exchange->start();
}

void Http2Session::answerLocally(std::int32_t id, int status) {
  std::string code = std::to_string(status);
  nghttp2_nv nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(":status")),
                reinterpret_cast<std::uint8_t*>(code.data()), 7, code.size(), NGHTTP2_NV_FLAG_NONE};
  nghttp2_submit_response(session_, id, &nv, 1, nullptr);
  if (Entry* entry = find(id)) {
    entry->answered = true;
    entry->pending.reset();
  }
}

// ---- the exchanges ----

void Http2Session::sessionEnded(Session* session) noexcept {
  for (auto& [id, entry] : streams_)
    if (entry.exchange.get() == session) entry.ended = true;
  schedule();
}

void Http2Session::streamGone(Http2Stream& stream) noexcept {
  if (done_) return;
  Entry* entry = find(stream.id());
  if (!entry) return;
  entry->stream = nullptr;
  if (entry->closed || entry->answered) return;
  if (!stream.responseDone()) {
    // The exchange ended before its response did (a timeout, an error): the stream is reset.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.id(), NGHTTP2_CANCEL);
  } else if (!stream.requestDone()) {
    // Answered before the client finished its request: it may stop sending (RFC 9113 8.1).
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.id(), NGHTTP2_NO_ERROR);
  }
  schedule();
}

ssize_t Http2Session::readCallback(nghttp2_session*, std::int32_t id, std::uint8_t* buffer,
                                   std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                                   void* self) {
  Entry* entry = of(self).find(id);
  if (!entry || !entry->stream) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return entry->stream->readResponse(buffer, length, flags);
}

// ---- the loop ----

void Http2Session::schedule() noexcept {
  if (done_) return;
  if (running_) {
    again_ = true;
    return;
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(later_.get()))) return;
  uv_idle_start(later_.get(), [](uv_idle_t* h) {
    uv_idle_stop(h);
    if (auto* self = static_cast<Http2Session*>(h->data)) self->runPending();
  });
}

// Everything the callbacks recorded: events for the exchanges, window credit, frames to send,
// exchanges to destroy. Repeated while a pass produced new work.
void Http2Session::runPending() noexcept {
  if (done_ || running_) return;
  running_ = true;
  uv_idle_stop(later_.get());
  for (int pass = 0; pass < 8 && !done_; ++pass) {
    again_ = false;
    for (auto& [id, entry] : streams_) {
      if (!entry.exchange || !entry.stream || entry.ended) continue;
      entry.stream->deliver();
      if (entry.stream)
        if (std::size_t credit = entry.stream->takeConsumed())
          if (nghttp2_session_consume(session_, id, credit) != 0)
            nghttp2_session_consume_connection(session_, credit);
    }
    reap();
    sendFrames();
    if (!again_) break;
  }
  running_ = false;
  if (done_) return host_.sessionEnded(this);
  if (!streams_.empty()) idleSince_ = uv_now(host_.loop());
  reportStreams();
  armTimer();
  if (again_) schedule();
}

void Http2Session::reap() {
  for (auto it = streams_.begin(); it != streams_.end();) {
    Entry& entry = it->second;
    if (entry.ended) {
      entry.ended = false;
      entry.exchange.reset();  // its Http2Stream reports streamGone (reset if still open)
    } else if (entry.exchange && entry.stream && entry.stream->exchangeDone()) {
      park(entry);
    }
    bool gone = !entry.exchange && !entry.pending && entry.closed;
    it = gone ? streams_.erase(it) : std::next(it);
  }
}

// The stream's exchange is over. Its session is kept for the next stream once nghttp2 took the
// whole response (the stream object feeds it until then) and the request arrived whole.
void Http2Session::park(Entry& entry) {
  Http2Stream& stream = *entry.stream;
  if (!stream.responseDone() || !stream.requestDone()) return;
  if (draining_ || closing_ || !entry.exchange->parkable()) {
    entry.exchange.reset();  // closes its "connection": the stream is over, nothing is reset
    return;
  }
  entry.exchange->parkClient().reset();  // the stream goes (streamGone)
  lanes_.push_back(std::move(entry.exchange));
}

void Http2Session::sendFrames() {
  if (done_) return;
  BufferPool& pool = host_.buffers();
  std::array<BufferSlice, ClientStream::kMaxSlices> slices{};
  std::size_t count = 0;
  char* buffer = nullptr;
  std::uint32_t used = 0;
  // A write that fails gives its buffers back; the connection is over then.
  auto writeSlices = [&] {
    if (count == 0) return true;
    int rc = client_->write(std::span(slices.data(), count));
    count = 0;
    return rc >= 0;
  };
  auto closeBuffer = [&] {
    if (!buffer) return true;
    slices[count++] = {buffer, 0, used};
    buffer = nullptr;
    return count < slices.size() || writeSlices();
  };
  bool ok = true;
  while (ok && client_->queuedBytes() < kHighWater) {
    const std::uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      closing_ = true;
      break;
    }
    if (n == 0) break;
    memory_.touched();
    auto left = static_cast<std::size_t>(n);
    while (ok && left > 0) {
      if (!buffer) buffer = pool.take(), used = 0;
      std::size_t take = std::min<std::size_t>(BufferPool::kBufferSize - used, left);
      std::memcpy(buffer + used, data, take);
      data += take;
      left -= take;
      used += static_cast<std::uint32_t>(take);
      if (used == BufferPool::kBufferSize) ok = closeBuffer();
    }
  }
  ok = ok && closeBuffer() && writeSlices();
  if (!ok) return finish();
  if (closing_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)))
    closeWhenFlushed();
}

// The last frames (a GOAWAY) go out, then FIN; the connection ends when that is done.
void Http2Session::closeWhenFlushed() {
  if (done_) return;
  if (!closing_) {
    closing_ = true;
    client_->stopReading();
  }
  if (shutdownSent_ || nghttp2_session_want_write(session_)) return;
  shutdownSent_ = true;
  if (client_->shutdown() < 0) finish();
}

void Http2Session::armTimer() {
  if (done_) return;
  const auto& t = frontend_->timeouts;
  std::uint64_t now = uv_now(host_.loop());
  std::uint64_t due = UINT64_MAX;
  if (closing_) {
    if (closeBy_ == 0) closeBy_ = now + ms(t.client);  // a peer that never reads our last bytes
    due = closeBy_;
  } else {
    if (streams_.empty()) due = idleSince_ + ms(idleTimeout());
    if (streams_.empty() && (!lanes_.empty() || memory_.releasable()))
      due = std::min(due, idleSince_ + kLaneKeepMs);
    if (draining_ && !finalGoaway_) due = std::min(due, goawayAt_);
    if (draining_ && finalGoaway_ && streams_.empty()) due = now;
  }
  if (due >= timerDue_) return;
  timerDue_ = due;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* h) {
        auto* self = static_cast<Http2Session*>(h->data);
        if (!self) return;
        self->timerDue_ = UINT64_MAX;
        self->onTimer();
      },
      due > now ? due - now : 0, 0);
}

void Http2Session::onTimer() {
  std::uint64_t now = uv_now(host_.loop());
  if (closing_) {
    if (now >= closeBy_) return finish();
    return armTimer();
  }
  if (streams_.empty() && now >= idleSince_ + kLaneKeepMs) {
    lanes_.clear();
    if (!nghttp2_session_want_write(session_)) memory_.release();
  }
  if (draining_ && !finalGoaway_ && now >= goawayAt_) {
    finalGoaway_ = true;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                          nullptr, 0);
  }
  if (streams_.empty() && (finalGoaway_ || now >= idleSince_ + ms(idleTimeout()))) {
    // Idle too long, or drained: say so and close.
    if (!finalGoaway_)
      nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                            nullptr, 0);
    closing_ = true;
  }
  runPending();
}

void Http2Session::finish() noexcept {
  if (done_) return;
  // The exchanges end first (their access log lines say so), then the connection.
  for (auto& [id, entry] : streams_)
    if (entry.exchange && !entry.ended) entry.exchange->abort();
  done_ = true;
  streams_.clear();
  lanes_.clear();
  reportStreams();
  host_.http2Changed(-1, 0);
  uv_timer_stop(timer_.get());
  timerDue_ = UINT64_MAX;
  uv_idle_stop(later_.get());
  client_->stopReading();
  if (!running_) host_.sessionEnded(this);
}

// Before its first request a connection gets timeouts.http_request (one that sends nothing is a
// slowloris), between requests timeouts.keep_alive.
common::Millis Http2Session::idleTimeout() const {
  return lastStreamId_ == 0 ? frontend_->timeouts.httpRequest : frontend_->timeouts.keepAlive;
}

void Http2Session::reportStreams() noexcept {
  auto open = static_cast<int>(streams_.size());
  if (open == reported_) return;
  host_.http2Changed(0, open - reported_);
  reported_ = open;
}

Http2Session::Entry* Http2Session::find(std::int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

}  // namespace molt::worker
