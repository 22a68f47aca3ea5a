// A frontend as a worker runs it: its listener handles and where its connections go.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/unique_fd.hpp"
#include "common/uv_handle.hpp"

namespace molt::worker {

class Backend;

// Owns the libuv handles over the listening sockets the master handed over for this frontend.
// Closing them (drain) leaves the sockets themselves open in the master, so connections queued
// in the kernel are taken by the next generation.
class Frontend {
 public:
  using AcceptHandler = std::function<void(Frontend&, uv_stream_t* listener)>;
  // An accept failed (EMFILE, ENFILE, ...): the error, once per failing listener wakeup.
  using AcceptErrorHandler = std::function<void(Frontend&, int status)>;

  Frontend(std::shared_ptr<const common::FrontendConfig> config,
           std::shared_ptr<Backend> defaultBackend)
      : config_(std::move(config)), defaultBackend_(std::move(defaultBackend)) {}

  const common::FrontendConfig& config() const { return *config_; }
  // Shared with the sessions the frontend accepted: they read its timeouts and headers.
  const std::shared_ptr<const common::FrontendConfig>& sharedConfig() const { return config_; }
  const std::shared_ptr<Backend>& defaultBackend() const { return defaultBackend_; }

  // Wraps a received listening socket. Returns 0 or a libuv error.
  // `bind` indexes the config's binds.
  int addListener(uv_loop_t* loop, common::UniqueFd fd, const std::string& address,
                  std::size_t bind);
  // True when `listener` (as given to the accept handler) is a bind with "tls": true.
  bool isTls(const uv_stream_t* listener) const;
  // The bind `listener` (as given to the accept handler) serves.
  const common::BindConfig& bindOf(const uv_stream_t* listener) const;
  // True when any of the frontend's binds terminates TLS.
  bool anyTls() const;
  // Starts accepting on every listener; `onAccept` is called once per pending connection.
  int startAccepting(AcceptHandler onAccept, AcceptErrorHandler onError);
  // Stops accepting without giving the sockets up: the kernel queues new connections (other
  // workers may take them) until resumeAccepting. For a worker short of descriptors.
  void pauseAccepting();
  // Accepts again after pauseAccepting. Returns 0 or a libuv error (the listeners not resumed
  // stay paused: call it again).
  int resumeAccepting(uv_loop_t* loop);
  // True while some listener is paused.
  bool paused() const;
  // Closes every listener handle (idempotent).
  void closeListeners();

 private:
  struct Listener {
    common::UvHandle<uv_tcp_t> handle;
    std::string address;
    int backlog = 0;
    bool tls = false;
    std::size_t bind = 0;
    common::UniqueFd parked;  // the socket while accepting is paused
  };
  int listen(Listener& listener);
  std::shared_ptr<const common::FrontendConfig> config_;
  std::shared_ptr<Backend> defaultBackend_;
  std::vector<Listener> listeners_;
  AcceptHandler onAccept_;
  AcceptErrorHandler onError_;
};

}  // namespace molt::worker
