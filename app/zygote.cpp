#include "app/zygote.hpp"

#include <fcntl.h>
#include <grp.h>
#include <openssl/ssl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/control.hpp"
#include "common/control_messages.hpp"
#include "common/log.hpp"
#include "common/process_title.hpp"
#include "worker/worker.hpp"

namespace molt::app {
namespace {

// In the forked worker: becomes what an exec'd `molt --worker` is at main().
[[noreturn]] void becomeWorker(int control, bool drop, uid_t uid, gid_t gid) {
  if (drop && (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) _exit(126);
  // The control socket takes fd 3 (the zygote's own socket, closed by dup2); nothing else stays.
  if (dup2(control, worker::kControlFd) < 0) _exit(127);
  syscall(SYS_close_range, worker::kControlFd + 1, ~0U, 0);
  // As after exec: default dispositions, and the signals the worker sets up stay blocked until
  // it has (runWorker unblocks them).
  for (int s : {SIGINT, SIGQUIT, SIGHUP, SIGUSR2, SIGTERM, SIGPIPE, SIGCHLD}) signal(s, SIG_DFL);
  sigset_t blocked;
  sigemptyset(&blocked);
  for (int s : {SIGINT, SIGQUIT, SIGHUP, SIGUSR2, SIGTERM}) sigaddset(&blocked, s);
  sigprocmask(SIG_SETMASK, &blocked, nullptr);
  int status = worker::runWorker(worker::kControlFd);
  std::fflush(nullptr);
  _exit(status);
}

}  // namespace

int runZygote(int socketFd) {
  common::log::setRole("zygote");
  common::setProcessTitle("zygote");
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 0;  // the master is already gone
  signal(SIGINT, SIG_IGN);       // ^C and reloads are the master's business
  signal(SIGQUIT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR2, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // What every worker would otherwise build for itself: OpenSSL's global state and the TLS
  // methods a server context fetches.
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, nullptr);
  SSL_CTX_free(SSL_CTX_new(TLS_server_method()));
  fcntl(socketFd, F_SETFL, fcntl(socketFd, F_GETFL) & ~O_NONBLOCK);
  for (;;) {
    common::ControlMessage request;
    int rc = common::recvControl(socketFd, request);
    if (rc == 0) return 0;  // the master is gone
    if (rc < 0) {
      if (rc == -EINTR) continue;
      common::log::error("zygote: {}", std::strerror(-rc));
      return 1;
    }
    auto spawn = common::control::Spawn::decode(request);
    if (!spawn) {
      common::sendControl(socketFd, common::control::Spawned{0, spawn.error}.encode().body);
      continue;
    }
    std::fflush(nullptr);
    // CLONE_PARENT: the worker is the master's child, so the master waits for it as for any.
    long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, 0);
    if (pid == 0) common::log::processChanged();
    if (pid == 0) becomeWorker(spawn->control.get(), spawn->drop, spawn->uid, spawn->gid);
    if (pid < 0) {
      common::sendControl(socketFd,
                          common::control::Spawned{0, std::strerror(errno)}.encode().body);
      continue;
    }
    common::sendControl(socketFd,
                        common::control::Spawned{static_cast<pid_t>(pid), ""}.encode().body);
  }
}

}  // namespace molt::app
