#include "worker/frontend.hpp"

#include <fcntl.h>

#include "common/log.hpp"

namespace molt::worker {

int Frontend::addListener(uv_loop_t* loop, common::UniqueFd fd, const std::string& address,
                          std::size_t bind) {
  Listener listener;
  if (int rc = uv_tcp_init(loop, listener.handle.get()); rc < 0) return rc;
  if (int rc = uv_tcp_open(listener.handle.get(), fd.get()); rc < 0) return rc;
  fd.release();  // the handle owns the descriptor now; uv_close closes it
  listener.handle->data = this;
  listener.address = address;
  listener.backlog = config_->binds.at(bind).backlog;
  listener.tls = config_->binds.at(bind).tls;
  listener.bind = bind;
  listeners_.push_back(std::move(listener));
  return 0;
}

int Frontend::startAccepting(AcceptHandler onAccept, AcceptErrorHandler onError) {
  onAccept_ = std::move(onAccept);
  onError_ = std::move(onError);
  for (auto& listener : listeners_)
    if (int rc = listen(listener); rc < 0) return rc;
  return 0;
}

int Frontend::listen(Listener& listener) {
  // The socket already listens (the master did it); uv_listen calls listen() again, so it must
  // repeat the configured backlog rather than shrink or grow it.
  int rc =
      uv_listen(listener.handle.stream(), listener.backlog, [](uv_stream_t* server, int status) {
        auto* self = static_cast<Frontend*>(server->data);
        if (!self) return;
        if (status < 0) return self->onError_(*self, status);
        self->onAccept_(*self, server);
      });
  if (rc < 0)
    common::log::error("uv_listen(frontend {} {}): {}", config_->name, listener.address,
                       uv_strerror(rc));
  return rc;
}

// The listening socket outlives its handle: a duplicate is kept (parked) and the handle closed,
// so that libuv stops polling it. A listener whose duplicate cannot be made keeps accepting.
void Frontend::pauseAccepting() {
  for (auto& listener : listeners_) {
    if (listener.parked || !listener.handle.initialized()) continue;
    int fd = -1;
    if (uv_fileno(listener.handle.base(), &fd) != 0) continue;
    listener.parked.reset(fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (listener.parked) listener.handle.close();
  }
}

int Frontend::resumeAccepting(uv_loop_t* loop) {
  for (auto& listener : listeners_) {
    if (!listener.parked) continue;
    common::UvHandle<uv_tcp_t> handle;
    if (int rc = uv_tcp_init(loop, handle.get()); rc < 0) return rc;
    if (int rc = uv_tcp_open(handle.get(), listener.parked.get()); rc < 0) return rc;
    listener.parked.release();  // the handle owns it again
    handle->data = this;
    listener.handle = std::move(handle);
    if (int rc = listen(listener); rc < 0) return rc;
  }
  return 0;
}

bool Frontend::paused() const {
  for (const auto& listener : listeners_)
    if (listener.parked) return true;
  return false;
}

bool Frontend::isTls(const uv_stream_t* listener) const {
  for (const auto& l : listeners_)
    if (l.handle.stream() == listener) return l.tls;
  return false;
}

const common::BindConfig& Frontend::bindOf(const uv_stream_t* listener) const {
  for (const auto& l : listeners_)
    if (l.handle.stream() == listener) return config_->binds.at(l.bind);
  return config_->binds.front();
}

bool Frontend::anyTls() const {
  for (const auto& b : config_->binds)
    if (b.tls) return true;
  return false;
}

void Frontend::closeListeners() {
  for (auto& listener : listeners_) listener.handle.close();  // parked sockets close with them
  listeners_.clear();
}

}  // namespace molt::worker
