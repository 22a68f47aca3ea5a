// One worker process as the master sees it: its pid, its control channel, its phase.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>

#include "common/control.hpp"
#include "common/control_messages.hpp"
#include "common/unique_fd.hpp"
#include "common/uv_handle.hpp"
#include "master/counters.hpp"

namespace molt::master {

namespace control = common::control;

class Zygote;

// Lifecycle of a worker process.
enum class WorkerPhase {
  Spawned,   // forked and exec'd; handover sent, not ready yet
  Ready,     // reported ready: accepting on its generation's listeners
  Draining,  // told to drain: no listeners, finishing its connections
  Exited     // no process: reaped (only its exit status remains), or not started yet
};

const char* phaseName(WorkerPhase phase);

// A child running `molt --worker`. Owns the pidfd (reaping) and the master's end of the control
// socket. Events arrive through the handlers given at spawn, on the master's loop.
class WorkerProcess {
 public:
  struct Handlers {
    std::function<void(WorkerProcess&, common::ControlMessage&&)> onMessage;
    std::function<void(WorkerProcess&, int waitStatus)> onExit;  // after reaping
    // A datagram that is no message at all (oversized, not JSON): what was wrong.
    std::function<void(WorkerProcess&, const std::string& what)> onInvalid;
  };

  WorkerProcess(unsigned slot, Handlers handlers) : slot_(slot), handlers_(std::move(handlers)) {}
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // Who a worker runs as: the master's own identity unless `drop` (global.user / group).
  struct Credentials {
    bool drop = false;
    uid_t uid = 0;
    gid_t gid = 0;
  };

  // Starts a worker with the control socket as fd 3 and nothing else inherited but stdio, as
  // `credentials`: forked by `zygote` when it runs (master/zygote.hpp), else fork+exec of
  // `exe --worker`. Returns 0 or -errno (logged by the caller).
  int spawn(uv_loop_t* loop, const std::string& exe, const Credentials& credentials,
            Zygote* zygote = nullptr);
  // Binary upgrade: takes over a worker the previous master image started.
  void adopt(uv_loop_t* loop, pid_t pid, common::UniqueFd pidfd, common::UniqueFd control,
             WorkerPhase phase, unsigned connections, uint64_t startedMs);
  int pidfd() const { return pidfd_.get(); }
  int controlFd() const { return control_ ? control_->fd() : -1; }
  // Queues a message (common/control_messages.hpp) on the control socket.
  void send(common::ControlMessage message);
  // Sends a signal if the process still runs.
  void kill(int signal) const;
  // Stops listening to the worker and SIGKILLs it (it broke the protocol); its exit is reported
  // as any other.
  void reject();

  unsigned slot() const { return slot_; }
  pid_t pid() const { return pid_; }
  WorkerPhase phase() const { return phase_; }
  void setPhase(WorkerPhase phase) { phase_ = phase; }
  unsigned connections() const { return connections_; }
  void setConnections(unsigned n) { connections_ = n; }
  // What the worker last reported (its "stats").
  void setStats(const control::Stats& stats) {
    connections_ = stats.connections;
    migrated_ = stats.migrated;
    adopted_ = stats.adopted;
    staying_ = stats.staying;
    http2Connections_ = stats.http2Connections;
    http2Streams_ = stats.http2Streams;
    parked_ = std::min(stats.parked, stats.connections);  // a worker's word: kept in bounds
  }
  unsigned parked() const { return parked_; }  // of connections(): parked idle keep-alive
  unsigned http2Connections() const { return http2Connections_; }
  unsigned http2Streams() const { return http2Streams_; }
  std::uint64_t migrated() const { return migrated_; }  // connections moved out
  std::uint64_t adopted() const { return adopted_; }    // connections moved in
  unsigned staying() const { return staying_; }         // draining: cannot move (TLS)
  uint64_t startedMs() const { return startedMs_; }     // CLOCK_MONOTONIC ms
  // Its counters (stats zone), from the spawn until the supervisor retires them at its exit.
  WorkerCounters* counters() const { return counters_.get(); }
  void setCounters(std::unique_ptr<WorkerCounters> counters) { counters_ = std::move(counters); }
  std::unique_ptr<WorkerCounters> takeCounters() { return std::move(counters_); }

 private:
  void onPidfdReadable();
  void watch(uv_loop_t* loop, common::UniqueFd control);

  unsigned slot_;
  Handlers handlers_;
  pid_t pid_ = -1;
  WorkerPhase phase_ = WorkerPhase::Exited;
  unsigned connections_ = 0;
  std::uint64_t migrated_ = 0, adopted_ = 0;
  unsigned staying_ = 0;
  unsigned http2Connections_ = 0, http2Streams_ = 0;
  unsigned parked_ = 0;
  uint64_t startedMs_ = 0;
  std::unique_ptr<WorkerCounters> counters_;
  common::UniqueFd pidfd_;
  common::UvHandle<uv_poll_t> pidPoll_;
  std::unique_ptr<common::ControlChannel> control_;
};

// Describes a wait status for a log line: "exit 0", "signal 9 (Killed)".
std::string describeWaitStatus(int status);

}  // namespace molt::master
