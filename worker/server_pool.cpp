#include "worker/server_pool.hpp"

#include <algorithm>

#include "worker/net/spares.hpp"

namespace molt::worker {

// One pooled connection. It is its stream's handler while pooled: any input or end of input
// means the connection cannot carry another request.
class ServerPool::Idle final : public StreamHandler, public spares::Recycled<ServerPool::Idle> {
 public:
  Idle(ServerPool& pool, const Server* server, std::unique_ptr<PlainStream> stream, uint64_t now)
      : pool_(pool), server_(server), stream_(std::move(stream)), since_(now) {
    stream_->setHandler(this);
  }
  const Server* server() const { return server_; }
  uint64_t since() const { return since_; }
  // Reading is left on: stopping and restarting it would cost the loop epoll_ctl calls, and the
  // new owner reads the connection anyway.
  std::unique_ptr<PlainStream> release() {
    stream_->setHandler(nullptr);
    return std::move(stream_);
  }
  bool watch() { return stream_->startReading() == 0; }

 private:
  void onStreamData(ClientStream&, char* buffer, std::size_t) noexcept override {
    pool_.buffers_.give(buffer);
    pool_.drop(this);
  }
  void onStreamEnd(ClientStream&, int) noexcept override { pool_.drop(this); }
  void onStreamWritten(ClientStream&, int) noexcept override {}
  void onStreamShutdown(ClientStream&, int) noexcept override {}

  ServerPool& pool_;
  const Server* server_;
  std::unique_ptr<PlainStream> stream_;
  uint64_t since_;
};

ServerPool::ServerPool(uv_loop_t* loop, BufferPool& buffers, size_t maxIdle)
    : loop_(loop), buffers_(buffers), maxIdle_(maxIdle) {
  uv_timer_init(loop_, sweepTimer_.get());
  sweepTimer_->data = this;
}

ServerPool::~ServerPool() {
  closeAll();
}

std::unique_ptr<PlainStream> ServerPool::take(const Server* server) {
  auto it = idle_.find(server);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  std::unique_ptr<Idle> idle = std::move(it->second.back());
  it->second.pop_back();
  --idleCount_;
  return idle->release();
}

void ServerPool::purge(const Server* server) {
  auto it = idle_.find(server);
  if (it == idle_.end()) return;
  idleCount_ -= it->second.size();
  idle_.erase(it);  // each Idle closes its stream
}

void ServerPool::give(const Server* server, std::unique_ptr<PlainStream> stream) {
  if (closed_) return;  // `stream` closes here
  auto& list = idle_[server];
  if (list.size() >= kMaxIdlePerServer) {
    list.erase(list.begin());  // the oldest is the likeliest to be closed by the server soon
    --idleCount_;
  } else if (idleCount_ >= maxIdle_) {
    return;  // `stream` closes here
  }
  auto idle = std::make_unique<Idle>(*this, server, std::move(stream), uv_now(loop_));
  if (!idle->watch()) return;
  list.push_back(std::move(idle));
  ++idleCount_;
  if (!uv_is_active(sweepTimer_.base()))
    uv_timer_start(
        sweepTimer_.get(),
        [](uv_timer_t* t) {
          if (auto* self = static_cast<ServerPool*>(t->data)) self->sweep();
        },
        kIdleMs / 4, kIdleMs / 4);
}

void ServerPool::drop(Idle* idle) {
  auto& list = idle_[idle->server()];
  auto it = std::find_if(list.begin(), list.end(), [&](const auto& p) { return p.get() == idle; });
  if (it == list.end()) return;
  // Destroying the stream from inside its own callback is allowed (see StreamHandler).
  list.erase(it);
  --idleCount_;
}

void ServerPool::sweep() {
  uint64_t now = uv_now(loop_);
  for (auto& [server, list] : idle_) {
    auto fresh = std::find_if(list.begin(), list.end(),
                              [&](const auto& idle) { return now - idle->since() < kIdleMs; });
    idleCount_ -= static_cast<size_t>(fresh - list.begin());
    list.erase(list.begin(), fresh);
  }
  if (idleCount_ == 0) uv_timer_stop(sweepTimer_.get());
}

void ServerPool::closeAll() {
  closed_ = true;
  idle_.clear();
  idleCount_ = 0;
  sweepTimer_.close();
}

}  // namespace molt::worker
