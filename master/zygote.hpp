// The zygote: a process that loaded and relocated molt's libraries and initialised OpenSSL once,
// and forks workers for the master.
//
// A worker that is fork+exec'd pays for its own copy of every library's relocated data (about
// 0.6 MiB, libcrypto's 400 KiB first) and of OpenSSL's global tables: private memory, in every
// worker, old ones included. Forked from the zygote, a worker shares those pages with it and with
// every other worker, copy-on-write, and still starts from a clean, small heap: the zygote never
// reads a config and never touches a connection. Workers are made children of the master
// (CLONE_PARENT), which waits for them through pidfds as before.
//
// The zygote process itself is app/zygote.hpp.
//
// Protocol: SOCK_SEQPACKET on fd 3 of `molt --zygote`, messages "spawn" and "spawned"
// (common/control_messages.hpp).
// The zygote exits when the master goes (EOF, and PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <string>

#include "common/unique_fd.hpp"
#include "master/worker_process.hpp"

namespace molt::master {

// The master's side.
class Zygote {
 public:
  Zygote() = default;
  ~Zygote();
  Zygote(const Zygote&) = delete;
  Zygote& operator=(const Zygote&) = delete;

  // Starts `exe --zygote`. False (logged) when it cannot: workers are then fork+exec'd.
  bool start(const std::string& exe);
  // Forks a worker with `workerControl` as its fd 3, as `credentials`. Returns its pid (a child
  // of the calling process), or -errno; waits at most a second for the zygote's answer.
  pid_t spawn(int workerControl, const WorkerProcess::Credentials& credentials);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Stops and reaps the zygote (idempotent).
  void stop();

 private:
  common::UniqueFd socket_;
  pid_t pid_ = -1;
};

}  // namespace molt::master
