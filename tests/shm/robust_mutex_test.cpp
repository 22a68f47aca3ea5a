#include "shm/robust_mutex.hpp"

#include <signal.h>
#include <sys/mman.h>

#include <catch2/catch.hpp>

#include "tests/shm/shm_test_support.hpp"

using molt::shm::LockResult;
using molt::shm::RobustLock;
using molt::shm::RobustMutex;
using molt::shm::test::Child;
using molt::shm::test::Signal;
using namespace std::chrono_literals;

namespace {

// A mutex in an anonymous shared mapping, visible to forked children.
struct SharedMutex {
  SharedMutex() {
    memory = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(memory != MAP_FAILED);
    REQUIRE(RobustMutex::initialize(static_cast<RobustMutex*>(memory)) == 0);
  }
  ~SharedMutex() { ::munmap(memory, 4096); }
  RobustMutex& get() { return *static_cast<RobustMutex*>(memory); }
  void* memory;
};

}  // namespace

TEST_CASE("a robust mutex locks and unlocks across processes", "[shm][mutex]") {
  SharedMutex m;
  Signal locked, release;
  Child child([&] {
    RobustLock lock(m.get(), 1s);
    locked.post();
    release.await();
    return lock.result() == LockResult::Acquired ? 0 : 1;
  });
  REQUIRE(locked.await());
  CHECK(m.get().lock(20ms) == LockResult::TimedOut);  // held by a live process: bounded wait
  release.post();
  CHECK(child.wait() == 0);
  RobustLock lock(m.get(), 1s);
  CHECK(lock.result() == LockResult::Acquired);
}

TEST_CASE("the next locker learns that the holder was SIGKILLed", "[shm][mutex]") {
  SharedMutex m;
  Child child([&] {
    m.get().lock(1s);
    ::raise(SIGKILL);
    return 0;
  });
  int status = child.wait();
  REQUIRE(WIFSIGNALED(status));
  {
    RobustLock lock(m.get(), 1s);
    REQUIRE(lock.result() == LockResult::OwnerDied);
    lock.markConsistent();
  }
  RobustLock again(m.get(), 1s);
  CHECK(again.result() == LockResult::Acquired);
}

TEST_CASE("an owner-died lock released unrepaired fails later lockers without hanging",
          "[shm][mutex]") {
  SharedMutex m;
  Child child([&] {
    m.get().lock(1s);
    ::raise(SIGKILL);
    return 0;
  });
  REQUIRE(WIFSIGNALED(child.wait()));
  { RobustLock lock(m.get(), 1s); }  // no markConsistent: the mutex is now unrecoverable
  CHECK(m.get().lock(1s) == LockResult::Failed);
}
