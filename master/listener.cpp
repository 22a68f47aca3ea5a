#include "master/listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.hpp"
#include "master/systemd.hpp"

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

void ListenerSet::adoptActivated() {
  char** names = nullptr;
  int count = systemd::listenFdsWithNames(&names);
  if (count < 0) common::log::warn("socket activation: sd_listen_fds: {}", std::strerror(-count));
  for (int i = 0; i < count; ++i) {
    int fd = 3 + i;  // SD_LISTEN_FDS_START
    std::string name = names && names[i] ? names[i] : "unknown";
    if (systemd::isSocket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
      common::log::warn("socket activation: fd {} ({}) is not a listening stream socket; ignored",
                        fd, name);
      continue;
    }
    auto listener = std::make_shared<Listener>();
    listener->fd.reset(fd);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    listener->bound.length = sizeof listener->bound.storage;
    getsockname(fd, reinterpret_cast<sockaddr*>(&listener->bound.storage), &listener->bound.length);
    listener->key = listener->bound.text();
    listener->backlog = 1024;
    common::log::info("socket activation: fd {} ({}) listening on {}", fd, name, listener->key);
    adopt(std::move(listener));
  }
  if (names) {
    for (int i = 0; i < count; ++i) free(names[i]);
    free(names);
  }
}

}  // namespace molt::master
