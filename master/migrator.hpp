// Connection migration as the master relays it: a draining worker's "migrate" goes to a serving
// worker of the newest generation as "adopt", and that worker's "adopted" goes back to the
// sender as "migrated" (the protocol: common/control_messages.hpp). The master never reads or
// writes the sockets it passes on; it checks that they are connected stream sockets, that the
// sender is a draining worker and the answer comes from the worker it asked, and answers the
// sender itself when the receiver refuses, exits or does not answer in time.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "common/control_messages.hpp"
#include "common/uv_handle.hpp"
#include "master/generation.hpp"
#include "master/worker_process.hpp"

namespace molt::master {

class Migrator {
 public:
  struct Hooks {
    // The newest serving generation (the receivers), or null.
    std::function<Generation*()> current;
    // A live worker by pid, or null.
    std::function<WorkerProcess*(pid_t)> worker;
    // A receiver that did not answer within kAdoptTimeoutMs is replaced: it broke the protocol.
    std::function<void(WorkerProcess&, const std::string& what)> reject;
  };

  Migrator(uv_loop_t* loop, Hooks hooks);
  Migrator(const Migrator&) = delete;
  Migrator& operator=(const Migrator&) = delete;

  // A draining worker of generation `from` lets a connection go. Returns "" when the offer was
  // passed on or answered, else what was wrong with it (the caller replaces the sender).
  std::string offer(Generation& from, WorkerProcess& sender, control::Migrate& migrate);
  // The receiver's answer. Returns "" or what was wrong (an answer nobody asked it for).
  std::string answered(WorkerProcess& receiver, const control::Adopted& adopted);
  // A worker exited: offers it was to answer are answered "not taken" for it.
  void workerExited(pid_t pid);
  // Offers waiting for their receiver (a binary upgrade waits for none to be left).
  std::size_t inFlight() const { return pending_.size(); }
  // Connections moved since the master started, and offers answered "not taken".
  std::uint64_t moved() const { return moved_; }
  std::uint64_t refused() const { return refused_; }
  // Binary upgrade: the offers waiting for an answer, for the next image to answer them
  // (validated by master/inventory_check.cpp), and their restoration there.
  nlohmann::json inventory() const;
  void restore(const nlohmann::json& pending);

 private:
  struct Pending {
    pid_t sender = 0;
    std::uint64_t id = 0;  // the sender's
    pid_t receiver = 0;
    unsigned from = 0, to = 0;  // generations
    std::uint64_t sentMs = 0;
  };
  WorkerProcess* pickReceiver(Generation& generation) const;
  void answerSender(const Pending& pending, const std::string& error);
  void checkTimeouts();

  uv_loop_t* loop_;
  Hooks hooks_;
  void forget(std::unordered_map<std::uint64_t, Pending>::iterator it);

  std::unordered_map<std::uint64_t, Pending> pending_;  // by ticket
  std::unordered_map<pid_t, unsigned> incoming_;        // pending, by receiver
  std::uint64_t nextTicket_ = 1;
  std::uint64_t moved_ = 0, refused_ = 0;
  common::UvHandle<uv_timer_t> timer_;  // runs while offers are pending
};

}  // namespace molt::master
