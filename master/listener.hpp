// Listening sockets, owned by the master and shared by every generation that binds the address.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/address.hpp"
#include "common/config.hpp"
#include "common/unique_fd.hpp"

namespace molt::master {

// One bound, listening socket. Workers get duplicates of it over their control sockets; the
// master keeps this one so a draining worker closing its copy loses no queued connection.
struct Listener {
  std::string key;              // the bind address as configured (BindConfig::text)
  common::SocketAddress bound;  // the address actually bound (port 0 resolved)
  int backlog = 0;
  common::UniqueFd fd;
};

// Binds `bind` (SO_REUSEADDR, IPV6_V6ONLY for IPv6, close-on-exec) and listens. Returns the
// listener, or null with `error` naming the syscall and address.
std::shared_ptr<Listener> bindListener(const common::BindConfig& bind, std::string& error);

// The master's listeners by bind address. A generation holds shared references to the ones it
// uses; a listener closes when the last generation using it is gone.
class ListenerSet {
 public:
  // The listener for `bind`: an existing one with the same address when there is one (no
  // rebind, no lost SYN), else a new bound socket. Null with `error` set on failure.
  // `key` names the socket across reloads: the bind's text, except that every port-0 bind is
  // its own socket (the caller makes its key unique, e.g. by frontend and bind index).
  std::shared_ptr<Listener> acquire(const common::BindConfig& bind, const std::string& key,
                                    std::string& error);
  // Adopts an already-listening socket (systemd socket activation, binary upgrade). It is
  // claimed by the first bind with the same text or the same address.
  void adopt(std::shared_ptr<Listener> listener);
  // systemd socket activation: adopts every listening stream socket in LISTEN_FDS.
  void adoptActivated();
  // Binary upgrade: registers a listener the previous image had (held by a restored generation).
  void restore(const std::shared_ptr<Listener>& listener) { byKey_[listener->key] = listener; }
  // Adopted sockets no generation has taken yet (kept for a later reload that binds them).
  const std::vector<std::shared_ptr<Listener>>& unclaimed() const { return adopted_; }
  // Forgets listeners no generation references any more.
  void prune();
  size_t size() const { return byKey_.size(); }

 private:
  std::map<std::string, std::weak_ptr<Listener>> byKey_;
  std::vector<std::shared_ptr<Listener>> adopted_;  // held until a generation takes them
};

}  // namespace molt::master
