// Helpers for shm tests: a forked child with a bounded wait, and a mapping's resident size.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace molt::shm::test {

// A child process running `body`; its return value is the exit status. The child never returns
// into Catch2: it leaves with _exit. The destructor SIGKILLs and reaps a child still running.
class Child {
 public:
  explicit Child(std::function<int()> body);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Waits at most `timeout` for the child to end. Returns its wait status, or -1 on timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
};

// A pipe for one-byte signals between parent and child.
class Signal {
 public:
  Signal();
  ~Signal();
  void post();  // writes one byte
  // Waits at most `timeout` for a byte. False on timeout.
  bool await(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  int fds_[2] = {-1, -1};
};

// Resident bytes ("Rss:") of the mapping that starts at `address`, from /proc/self/smaps;
// -1 when no mapping starts there.
std::int64_t residentBytes(const void* address);
// The pathname column of that mapping ("/memfd:molt-session-cache (deleted)"), or "".
std::string mappingName(const void* address);

}  // namespace molt::shm::test
