#include "shm/robust_mutex.hpp"

#include <cerrno>
#include <ctime>

namespace molt::shm {

int RobustMutex::initialize(RobustMutex* at) noexcept {
  pthread_mutexattr_t attr;
  int err = pthread_mutexattr_init(&attr);
  if (err != 0) return err;
  err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (err == 0) err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (err == 0) err = pthread_mutex_init(&at->mutex_, &attr);
  pthread_mutexattr_destroy(&attr);
  return err;
}

LockResult RobustMutex::lock(std::chrono::milliseconds timeout) noexcept {
  // A bounded wait on CLOCK_MONOTONIC: a wall-clock jump must not turn it into a long one.
  timespec deadline{};
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
  deadline.tv_sec += static_cast<time_t>(ns / 1'000'000'000);
  deadline.tv_nsec += static_cast<long>(ns % 1'000'000'000);
  if (deadline.tv_nsec >= 1'000'000'000) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1'000'000'000;
  }
  int err = pthread_mutex_clocklock(&mutex_, CLOCK_MONOTONIC, &deadline);
  switch (err) {
    case 0:
      return LockResult::Acquired;
    case EOWNERDEAD:
      return LockResult::OwnerDied;
    case ETIMEDOUT:
      return LockResult::TimedOut;
    default:
      return LockResult::Failed;
  }
}

void RobustMutex::markConsistent() noexcept {
  pthread_mutex_consistent(&mutex_);
}

void RobustMutex::unlock() noexcept {
  pthread_mutex_unlock(&mutex_);
}

}  // namespace molt::shm
