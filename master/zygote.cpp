#include "master/zygote.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/control.hpp"
#include "common/control_messages.hpp"
#include "common/log.hpp"

namespace molt::master {
namespace {

// The zygote's end of its socket, in the zygote process.
constexpr int kSocketFd = 3;

}  // namespace

Zygote::~Zygote() {
  stop();
}

bool Zygote::start(const std::string& exe) {
  stop();
  common::UniqueFd mine, theirs;
  if (int rc = common::makeControlPair(mine, theirs); rc < 0) {
    common::log::warn("zygote: socketpair: {}; workers will be exec'd", std::strerror(-rc));
    return false;
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    common::log::warn("zygote: fork: {}; workers will be exec'd", std::strerror(errno));
    return false;
  }
  if (pid == 0) {
    if (theirs.get() == kSocketFd) {
      fcntl(kSocketFd, F_SETFD, 0);
    } else if (dup2(theirs.get(), kSocketFd) < 0) {
      _exit(127);
    }
    syscall(SYS_close_range, kSocketFd + 1, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    char arg0[] = "molt";
    char arg1[] = "--zygote";
    char* argv[] = {arg0, arg1, nullptr};
    execv(exe.c_str(), argv);
    _exit(127);
  }
  socket_ = std::move(mine);
  pid_ = pid;
  common::log::info("zygote started, pid {}", pid);
  return true;
}

pid_t Zygote::spawn(int workerControl, const WorkerProcess::Credentials& credentials) {
  if (!running()) return -ESRCH;
  common::UniqueFd control(fcntl(workerControl, F_DUPFD_CLOEXEC, 0));
  if (!control) return -errno;
  common::ControlMessage request =
      common::control::Spawn{credentials.drop, credentials.uid, credentials.gid, std::move(control)}
          .encode();
  int fds[] = {request.fds.front().get()};
  if (int rc = common::sendControl(socket_.get(), request.body, fds); rc < 0) return rc;
  pollfd p{socket_.get(), POLLIN, 0};
  int ready = poll(&p, 1, 1000);
  if (ready <= 0) return ready == 0 ? -ETIMEDOUT : -errno;
  common::ControlMessage message;
  int rc = common::recvControl(socket_.get(), message);
  if (rc <= 0) return rc == 0 ? -EPIPE : rc;
  auto answer = common::control::Spawned::decode(message);
  if (!answer || answer->pid <= 0) {
    common::log::warn("zygote: {}", answer ? answer->error : answer.error);
    return -EAGAIN;
  }
  return answer->pid;
}

void Zygote::stop() {
  if (pid_ <= 0) return;
  socket_.reset();  // EOF: it exits
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace molt::master
