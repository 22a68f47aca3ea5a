// Connection: the part every accepted TCP connection of molt-origin shares — reading into pooled
// blocks, the Output, half-close, and the rule for when the object is deleted.
#pragma once

#include <uv.h>

#include <cstddef>

#include "common/uv_handle.hpp"
#include "tools/origin/buffer_pool.hpp"
#include "tools/origin/output.hpp"

namespace molt::origin {

// Above this many bytes waiting in libuv's write queue, a connection stops reading.
inline constexpr std::size_t kWriteHighWater = 256 * 1024;

class ConnectionSet;

// One accepted connection. Lifetime: owned by its ConnectionSet. A connection that calls
// close() is deleted when the libuv callback that led to it returns, so code running inside a
// callback may keep using `this` after close() (but must not start new I/O).
class Connection {
 public:
  virtual ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Takes the pending connection of `server` and starts reading. False (logged) on failure; the
  // caller then deletes the object.
  bool accept(uv_stream_t* server);

 protected:
  explicit Connection(ConnectionSet& set);

  // `length` bytes arrived at block->data; the callee retains the block if it keeps it.
  virtual void onRead(Block* block, std::size_t length) = 0;
  // The peer shut down its write side.
  virtual void onEof() = 0;
  // One uv_write finished successfully (failures close the connection before this).
  virtual void onWritten() = 0;
  // shutdownWrite() completed: every queued byte is written and the FIN is sent.
  virtual void onShutdown() = 0;

  // Starts or stops reading; idempotent.
  void setReading(bool on);
  // Sends our FIN once every queued write is done, then calls onShutdown().
  void shutdownWrite();
  // Stops reading at once; the handles are closed (cancelling pending writes) on deletion.
  void close();
  bool closed() const { return closed_; }
  // Deletes `this` if close() was called. Only a libuv callback's entry point may call it, last.
  void reapIfClosed();

  common::UvHandle<uv_tcp_t> tcp_;
  Output out_;

 private:
  friend class ConnectionSet;
  static void onAlloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
  static void onReadDone(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void onWriteDone(uv_write_t* req, int status);
  static void onShutdownDone(uv_shutdown_t* req, int status);

  ConnectionSet& set_;
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
  bool reading_ = false;
  bool closed_ = false;
};

// Every live connection of the process, so that a signal can close them all at once.
class ConnectionSet {
 public:
  ConnectionSet() = default;
  ConnectionSet(const ConnectionSet&) = delete;
  ConnectionSet& operator=(const ConnectionSet&) = delete;
  ~ConnectionSet() { closeAll(); }

  // Deletes every connection. Call only from outside connection callbacks (e.g. a signal).
  void closeAll();

 private:
  friend class Connection;
  Connection* head_ = nullptr;
};

}  // namespace molt::origin
