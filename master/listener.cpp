#include "master/listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace molt::master {

std::shared_ptr<Listener> bindListener(const common::BindConfig& bind, std::string& error) {
  auto listener = std::make_shared<Listener>();
  listener->key = bind.text;
  listener->backlog = bind.backlog;
  int family = bind.address.family();
  listener->fd.reset(socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int fd = listener->fd.get();
  auto fail = [&](const char* call) {
    error = std::string(call) + "(" + bind.text + "): " + std::strerror(errno);
    return nullptr;
  };
  if (fd < 0) return fail("socket");
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) return fail("setsockopt");
  // Without V6ONLY "[::]:80" would also take IPv4 and collide with "0.0.0.0:80".
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
    return fail("setsockopt");
  if (::bind(fd, bind.address.sa(), bind.address.length) < 0) return fail("bind");
  if (::listen(fd, bind.backlog) < 0) return fail("listen");
  listener->bound.length = sizeof listener->bound.storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&listener->bound.storage),
                  &listener->bound.length) < 0)
    return fail("getsockname");
  return listener;
}

std::shared_ptr<Listener> ListenerSet::acquire(const common::BindConfig& bind,
                                               const std::string& key, std::string& error) {
  if (auto it = byKey_.find(key); it != byKey_.end()) {
    if (auto existing = it->second.lock()) return existing;
  }
  for (auto it = adopted_.begin(); it != adopted_.end(); ++it) {
    if ((*it)->key != key && !((*it)->bound == bind.address)) continue;
    auto listener = *it;
    adopted_.erase(it);
    listener->key = key;
    byKey_[key] = listener;
    return listener;
  }
  auto listener = bindListener(bind, error);
  if (listener) {
    listener->key = key;
    byKey_[key] = listener;
  }
  return listener;
}

void ListenerSet::adopt(std::shared_ptr<Listener> listener) {
  adopted_.push_back(std::move(listener));
}

void ListenerSet::prune() {
  for (auto it = byKey_.begin(); it != byKey_.end();) {
    it = it->second.expired() ? byKey_.erase(it) : std::next(it);
  }
}

}  // namespace molt::master
