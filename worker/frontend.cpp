#include "worker/frontend.hpp"

#include "common/log.hpp"

namespace molt::worker {

int Frontend::addListener(uv_loop_t* loop, common::UniqueFd fd, const std::string& address,
                          int backlog, bool tls) {
  Listener listener;
  if (int rc = uv_tcp_init(loop, listener.handle.get()); rc < 0) return rc;
  if (int rc = uv_tcp_open(listener.handle.get(), fd.get()); rc < 0) return rc;
  fd.release();  // the handle owns the descriptor now; uv_close closes it
  listener.handle->data = this;
  listener.address = address;
  listener.backlog = backlog;
  listener.tls = tls;
  listeners_.push_back(std::move(listener));
  return 0;
}

int Frontend::startAccepting(AcceptHandler onAccept) {
  onAccept_ = std::move(onAccept);
  for (auto& listener : listeners_) {
    // The socket already listens (the master did it); uv_listen calls listen() again, so it must
    // repeat the configured backlog rather than shrink or grow it.
    int rc =
        uv_listen(listener.handle.stream(), listener.backlog, [](uv_stream_t* server, int status) {
          auto* self = static_cast<Frontend*>(server->data);
          if (!self) return;
          if (status < 0) {
            common::log::warn("accept on frontend {}: {}", self->config_->name,
                              uv_strerror(status));
            return;
          }
          self->onAccept_(*self, server);
        });
    if (rc < 0) {
      common::log::error("uv_listen(frontend {} {}): {}", config_->name, listener.address,
                         uv_strerror(rc));
      return rc;
    }
  }
  return 0;
}

bool Frontend::isTls(const uv_stream_t* listener) const {
  for (const auto& l : listeners_)
    if (l.handle.stream() == listener) return l.tls;
  return false;
}

bool Frontend::anyTls() const {
  for (const auto& b : config_->binds)
    if (b.tls) return true;
  return false;
}

void Frontend::closeListeners() {
  for (auto& listener : listeners_) listener.handle.close();
  listeners_.clear();
}

}  // namespace molt::worker
