// Test support: the real molt master and the project's test origin, started per test.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

// Fails the test unless `child` prints a line matching `pattern` (within the optional timeout
// and from the optional line), showing everything it printed so far.
#define REQUIRE_LINE(child, pattern, ...)                                                  \
  do {                                                                                     \
    if (!(child).waitForLine(pattern, ##__VA_ARGS__))                                      \
      FAIL("no line matching: " << (pattern) << "\n--- output ---\n" << (child).output()); \
  } while (0)

namespace molt::test {

// molt-origin with one HTTP and one TCP echo listener on loopback ports the kernel chose.
class Origin {
 public:
  // `httpPort` 0: the kernel chooses (a test restarting an origin passes its old port).
  explicit Origin(const std::string& name = "origin", std::uint16_t httpPort = 0);
  std::uint16_t httpPort() const { return httpPort_; }
  std::uint16_t echoPort() const { return echoPort_; }
  Child& process() { return *child_; }

 private:
  std::unique_ptr<Child> child_;
  std::uint16_t httpPort_ = 0, echoPort_ = 0;
};

// `molt -f CONFIG` with CONFIG written to a scratch directory. The constructor waits until the
// first generation serves (and fails the test if it does not within the timeout).
class Molt {
 public:
  // `launcher` goes before molt's own argv (a program that execs it: prlimit, ...).
  explicit Molt(const std::string& configText, const std::vector<std::string>& env = {},
                bool waitServing = true, const std::vector<std::string>& launcher = {});
  Child& process() { return *child_; }
  const TempDir& dir() const { return dir_; }
  const std::string& configPath() const { return configPath_; }
  // Rewrites the config file (for reload tests).
  void rewriteConfig(const std::string& configText) const;
  // The port frontend `name` listens on in generation `generation`, from the master's log.
  std::uint16_t port(const std::string& frontend, unsigned generation = 1);
  // Worker pids of `generation`, from the master's log (respawns included, latest per slot).
  std::vector<pid_t> workerPids(unsigned generation = 1);

 private:
  TempDir dir_;
  std::string configPath_;
  std::unique_ptr<Child> child_;
};

// molt run from a private copy of its binary, so a test can replace or touch that file (binary
// upgrade). The constructor waits until generation 1 serves.
struct CopiedMolt {
  TempDir bin, dir;
  std::string binary = bin.path() + "/molt";
  std::unique_ptr<Child> master;

  explicit CopiedMolt(const std::string& configText, const std::vector<std::string>& env = {});
  // Puts a fresh copy of the build's binary at `path`.
  static void install(const std::string& path);
  // Replaces the binary the way a package manager does (a new inode renamed over the path) and
  // sends SIGUSR2; waits until generation `next` serves.
  void upgradeTo(unsigned next);
  // The port frontend `name` listens on (from the log).
  std::uint16_t port(const std::string& frontend);
};

}  // namespace molt::test
