// Server: the listeners, signal handlers and connections of one molt-origin process.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "common/uv_handle.hpp"
#include "tools/origin/connection.hpp"
#include "tools/origin/http_connection.hpp"
#include "tools/origin/options.hpp"

namespace molt::origin {

// Lives on the stack of main() for the whole run, on the loop's thread.
class Server {
 public:
  Server(uv_loop_t* loop, std::string name);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (SO_REUSEADDR, backlog 4096), listens, then prints "listening KIND HOST:PORT" on
  // stdout. Returns false with `error` set on failure.
  bool listen(const ListenSpec& spec, std::string& error);
  // SIGTERM and SIGINT call stop().
  void watchSignals();
  // Closes listeners, connections and signal handlers; uv_run then returns.
  void stop();

 private:
  struct Listener {
    Server* server;
    ListenerKind kind;
    common::UvHandle<uv_tcp_t> tcp;
  };
  static void onConnection(uv_stream_t* stream, int status);
  static void onSignal(uv_signal_t* handle, int signal);
  void startSignal(common::UvHandle<uv_signal_t>& handle, int signal);

  uv_loop_t* loop_;
  HttpShared http_;
  ConnectionSet connections_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  common::UvHandle<uv_signal_t> sigterm_;
  common::UvHandle<uv_signal_t> sigint_;
};

}  // namespace molt::origin
