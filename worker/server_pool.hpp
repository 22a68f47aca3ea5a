// ServerPool: a worker's idle keep-alive connections to servers, reused by http sessions.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/uv_handle.hpp"
#include "worker/net/buffer_pool.hpp"
#include "worker/net/client_stream.hpp"
#include "worker/net/plain_stream.hpp"

namespace molt::worker {

struct Server;

// Keeps at most kMaxIdlePerServer idle connections per server and `maxIdle` in all, most
// recently used first, for at most kIdleMs each: as many as a burst of exchanges ended with, so
// that the next burst finds them instead of reconnecting (a pool smaller than the concurrency a
// server sees closes and reopens connections all the time). An idle connection keeps reading so
// that a server closing it (or sending anything unasked) is noticed at once and the connection
// dropped. Single-threaded; owned by the worker, which must close it (closeAll) before the loop
// ends.
class ServerPool {
 public:
  static constexpr size_t kMaxIdlePerServer = 1024;
  static constexpr std::uint64_t kIdleMs = 10'000;

  ServerPool(uv_loop_t* loop, BufferPool& buffers, size_t maxIdle);
  ~ServerPool();
  ServerPool(const ServerPool&) = delete;
  ServerPool& operator=(const ServerPool&) = delete;

  // An idle connection to `server`, or null. The caller owns it: no handler yet (input that
  // arrives before one is set is dropped), still reading.
  std::unique_ptr<PlainStream> take(const Server* server);
  // Keeps `stream` (a connection to `server` between two complete exchanges) for reuse, or
  // closes it when the pool is full (the server's oldest idle connection goes instead, if the
  // server has kMaxIdlePerServer) or closed.
  void give(const Server* server, std::unique_ptr<PlainStream> stream);
  // Idle connections held (each a descriptor).
  size_t idleCount() const { return idleCount_; }
  // Closes the idle connections to `server` (its address changed, or it went away).
  void purge(const Server* server);
  // Closes every idle connection and refuses new ones (drain and stop); stops the sweep timer.
  void closeAll();

 private:
  class Idle;
  void drop(Idle* idle);
  void sweep();

  uv_loop_t* loop_;
  BufferPool& buffers_;
  // Per server, oldest first; taken from the back.
  std::unordered_map<const Server*, std::vector<std::unique_ptr<Idle>>> idle_;
  common::UvHandle<uv_timer_t> sweepTimer_;
  size_t idleCount_ = 0;
  size_t maxIdle_;
  bool closed_ = false;
};

}  // namespace molt::worker
