// Test support: real child processes (molt, molt-origin) with their output captured.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace molt::test {

using namespace std::chrono_literals;

// A child process whose stdout and stderr are read into one buffer by a background thread.
// The destructor SIGKILLs it (by pid) if it still runs and reaps it: tests leave nothing behind.
class Child {
 public:
  // Starts argv[0] (a path) with `extraEnv` ("NAME=value") added to the environment.
  Child(const std::vector<std::string>& argv, const std::vector<std::string>& extraEnv = {});
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Waits until some line of output matches `pattern`, scanning lines from `fromLine` on.
  // Returns the match groups, or nullopt after `timeout`.
  std::optional<std::vector<std::string>> waitForLine(const std::string& pattern,
                                                      std::chrono::milliseconds timeout = 10s,
                                                      size_t fromLine = 0);
  // Every complete line so far.
  std::vector<std::string> lines() const;
  std::string output() const;
  void signal(int signum) const;
  // Waits for the exit; returns the wait status, or nullopt after `timeout`. Once it returned a
  // status, output() holds everything the child wrote (unless a process it left holds the pipe
  // open for more than 2 s).
  std::optional<int> waitExit(std::chrono::milliseconds timeout = 10s);
  bool running();

 private:
  void readLoop(int fd);

  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string buffer_;
  std::vector<std::string> lines_;
  bool eof_ = false;
  std::thread reader_;
};

// A scratch directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  // Writes `contents` to path()/name and returns the full path.
  std::string write(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

// Paths of the binaries under test, from the environment meson sets (MOLT_BIN, MOLT_ORIGIN).
std::string moltBinary();
std::string originBinary();

// True when the binaries under test were built with the sanitizers (scripts/test --sanitize sets
// MOLT_SANITIZED): their memory is then the sanitizers' (shadow memory, quarantine), and the
// memory bounds the tests hold molt to do not apply; everything else does.
bool sanitizedBuild();
// True when `pid` names a live (not zombie) process.
bool processAlive(pid_t pid);
// VmRSS of `pid` in KiB (from /proc/PID/status), or -1.
long rssKiB(pid_t pid);
// Pids of the children of `pid` (from /proc/PID/task/*/children).
std::vector<pid_t> childrenOf(pid_t pid);

}  // namespace molt::test
