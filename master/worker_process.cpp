#include "master/worker_process.hpp"

#include <grp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.hpp"
#include "master/zygote.hpp"

namespace molt::master {
namespace {

constexpr int kWorkerControlFd = 3;

int pidfdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

// Runs in the forked child: only async-signal-safe calls until exec.
[[noreturn]] void execWorker(int controlFd, const char* exe,
                             const WorkerProcess::Credentials& credentials) {
  // Privileges go before anything else runs in the child: supplementary groups, group, user.
  if (credentials.drop &&
      (setgroups(0, nullptr) != 0 || setgid(credentials.gid) != 0 || setuid(credentials.uid) != 0))
    _exit(126);
  if (controlFd == kWorkerControlFd) {
    fcntl(controlFd, F_SETFD, 0);
  } else if (dup2(controlFd, kWorkerControlFd) < 0) {
    _exit(127);
  }
  // Everything else the master holds (listeners, zones, other workers' sockets, the loop's
  // epoll) must not leak into the worker: listeners arrive over the control socket instead.
  syscall(SYS_close_range, kWorkerControlFd + 1, ~0U, 0);
  // Signals the worker handles or ignores stay blocked until it has set that up (a ^C to the
  // process group must not kill a worker that is still starting); the rest are unblocked.
  sigset_t blocked;
  sigemptyset(&blocked);
  for (int s : {SIGINT, SIGQUIT, SIGHUP, SIGUSR2, SIGTERM}) sigaddset(&blocked, s);
  sigprocmask(SIG_SETMASK, &blocked, nullptr);
  char arg0[] = "molt";
  char arg1[] = "--worker";
  char* argv[] = {arg0, arg1, nullptr};
  execv(exe, argv);
  _exit(127);
}

}  // namespace

const char* phaseName(WorkerPhase phase) {
  switch (phase) {
    case WorkerPhase::Spawned:
      return "spawned";
    case WorkerPhase::Ready:
      return "ready";
    case WorkerPhase::Draining:
      return "draining";
    case WorkerPhase::Exited:
      return "exited";
  }
  return "?";
}

WorkerProcess::~WorkerProcess() = default;

int WorkerProcess::spawn(uv_loop_t* loop, const std::string& exe, const Credentials& credentials,
                         Zygote* zygote) {
  phase_ = WorkerPhase::Exited;  // until a process runs
  common::UniqueFd masterEnd, workerEnd;
  if (int rc = common::makeControlPair(masterEnd, workerEnd); rc < 0) return rc;
  pid_t pid = -1;
  if (zygote && zygote->running()) {
    pid = zygote->spawn(workerEnd.get(), credentials);
    if (pid <= 0) {
      common::log::warn("zygote: no worker ({}); this one is exec'd, the zygote restarted",
                        std::strerror(-pid));
      zygote->stop();
      zygote->start(exe);
    }
  }
  if (pid <= 0) {
    std::fflush(nullptr);  // nothing buffered may be written twice
    pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) execWorker(workerEnd.get(), exe.c_str(), credentials);
  }
  pid_ = pid;
  phase_ = WorkerPhase::Spawned;
  connections_ = 0;
  startedMs_ = uv_hrtime() / 1'000'000;
  pidfd_.reset(pidfdOpen(pid));
  if (!pidfd_) {
    // Without a pidfd the master could neither wait for nor signal this child reliably: it is
    // not left running untracked (it is the master's child, even when the zygote forked it).
    int err = errno;
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid_ = -1;
    phase_ = WorkerPhase::Exited;
    return -err;
  }
  watch(loop, std::move(masterEnd));
  return 0;
}

void WorkerProcess::adopt(uv_loop_t* loop, pid_t pid, common::UniqueFd pidfd,
                          common::UniqueFd control, WorkerPhase phase, unsigned connections,
                          uint64_t startedMs) {
  pid_ = pid;
  pidfd_ = std::move(pidfd);
  phase_ = phase;
  connections_ = connections;
  startedMs_ = startedMs;
  watch(loop, std::move(control));
}

void WorkerProcess::watch(uv_loop_t* loop, common::UniqueFd control) {
  pidPoll_ = common::UvHandle<uv_poll_t>();
  uv_poll_init(loop, pidPoll_.get(), pidfd_.get());
  pidPoll_->data = this;
  uv_poll_start(pidPoll_.get(), UV_READABLE, [](uv_poll_t* h, int, int) {
    if (auto* self = static_cast<WorkerProcess*>(h->data)) self->onPidfdReadable();
  });
  control_ = std::make_unique<common::ControlChannel>(
      loop, std::move(control),
      [this](common::ControlMessage&& m) { handlers_.onMessage(*this, std::move(m)); },
      [] {},  // EOF alone proves nothing: the pidfd says when the process is gone
      [this](const std::string& what) { handlers_.onInvalid(*this, what); });
}

void WorkerProcess::send(common::ControlMessage message) {
  if (control_ && control_->open()) control_->send(std::move(message));
}

void WorkerProcess::kill(int signal) const {
  if (phase_ != WorkerPhase::Exited && pidfd_)
    syscall(SYS_pidfd_send_signal, pidfd_.get(), signal, nullptr, 0);
}

void WorkerProcess::reject() {
  control_.reset();
  kill(SIGKILL);
}

void WorkerProcess::onPidfdReadable() {
  siginfo_t info{};
  if (waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG) < 0) {
    common::log::error("waitid(worker pid {}): {}", pid_, std::strerror(errno));
    return;
  }
  if (info.si_pid == 0) return;
  // What the worker sent before it died is read first (a migration's "adopted" among it).
  if (control_) control_->readWaiting();
  int status = info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : info.si_status;
  phase_ = WorkerPhase::Exited;
  pidPoll_.close();
  pidfd_.reset();
  control_.reset();
  handlers_.onExit(*this, status);  // may destroy this
}

std::string describeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "status " + std::to_string(status);
}

}  // namespace molt::master
