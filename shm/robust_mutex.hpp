// A process-shared robust mutex that lives in a zone.
#pragma once

#include <pthread.h>

#include <chrono>

namespace molt::shm {

// What lock() got.
enum class LockResult {
  Acquired,   // locked; the protected data is as the last owner left it
  OwnerDied,  // locked, but the last owner died holding it: repair, then markConsistent()
  TimedOut,   // not locked: another (live, but stopped or slow) process holds it
  Failed      // not locked: unrecoverable (an owner-died lock was unlocked unrepaired) or EINVAL
};

// pthread_mutex_t with PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST, placed in shared
// memory. Not constructible: the zone's creator calls initialize() on the bytes once, before
// any other process maps them. Boost.Interprocess 1.74's mutexes are not robust: a process
// dying inside one would hang every other process, hence this.
class RobustMutex {
 public:
  RobustMutex() = delete;
  RobustMutex(const RobustMutex&) = delete;
  RobustMutex& operator=(const RobustMutex&) = delete;

  // Zone creator only: initialises the mutex at `at`. Returns 0 or an errno value.
  static int initialize(RobustMutex* at) noexcept;

  // Any process mapping the zone: waits at most `timeout` (bounded, so that a stopped peer
  // stalls a worker's loop for at most that long, never forever).
  LockResult lock(std::chrono::milliseconds timeout) noexcept;
  // After OwnerDied, once the data is repaired: without it the unlock makes the mutex
  // permanently unusable (every later lock() is Failed).
  void markConsistent() noexcept;
  void unlock() noexcept;

 private:
  pthread_mutex_t mutex_;
};

// Scoped lock: unlocks on destruction if lock() locked. A guard destroyed after OwnerDied
// without markConsistent() leaves the mutex unrecoverable; callers always repair first.
class RobustLock {
 public:
  RobustLock(RobustMutex& mutex, std::chrono::milliseconds timeout) noexcept
      : mutex_(mutex), result_(mutex.lock(timeout)) {}
  ~RobustLock() {
    if (owns()) mutex_.unlock();
  }
  RobustLock(const RobustLock&) = delete;
  RobustLock& operator=(const RobustLock&) = delete;

  LockResult result() const { return result_; }
  bool owns() const { return result_ == LockResult::Acquired || result_ == LockResult::OwnerDied; }
  bool ownerDied() const { return result_ == LockResult::OwnerDied; }
  void markConsistent() noexcept { mutex_.markConsistent(); }

 private:
  RobustMutex& mutex_;
  LockResult result_;
};

}  // namespace molt::shm
