#include "master/systemd.hpp"

#include <dlfcn.h>

#include <cerrno>
#include <cstdlib>

#include "common/log.hpp"

namespace molt::master::systemd {
namespace {

struct Library {
  int (*notify)(int, const char*) = nullptr;
  int (*listenFdsWithNames)(int, char***) = nullptr;
  int (*isSocket)(int, int, int, int) = nullptr;
};

// Loaded once, on first use; null members when it cannot be (logged once).
const Library& library() {
  static const Library loaded = [] {
    Library l;
    void* handle = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      common::log::warn("systemd: cannot load libsystemd.so.0: {}", dlerror());
      return l;
    }
    l.notify = reinterpret_cast<int (*)(int, const char*)>(dlsym(handle, "sd_notify"));
    l.listenFdsWithNames =
        reinterpret_cast<int (*)(int, char***)>(dlsym(handle, "sd_listen_fds_with_names"));
    l.isSocket = reinterpret_cast<int (*)(int, int, int, int)>(dlsym(handle, "sd_is_socket"));
    return l;
  }();
  return loaded;
}

}  // namespace

int notify(const char* state) {
  if (!std::getenv("NOTIFY_SOCKET")) return 0;
  const Library& l = library();
  return l.notify ? l.notify(0, state) : -ENOSYS;
}

int listenFdsWithNames(char*** names) {
  *names = nullptr;
  if (!std::getenv("LISTEN_FDS")) return 0;
  const Library& l = library();
  return l.listenFdsWithNames ? l.listenFdsWithNames(1, names) : -ENOSYS;
}

int isSocket(int fd, int family, int type, int listening) {
  const Library& l = library();
  return l.isSocket ? l.isSocket(fd, family, type, listening) : -ENOSYS;
}

}  // namespace molt::master::systemd
