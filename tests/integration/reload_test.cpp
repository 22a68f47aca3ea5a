// End-to-end: reloads, draining generations, hard stops, binary upgrade (issue: hot reload).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;

namespace {

std::string config(std::uint16_t serverPort, const std::string& global = "") {
  return R"({
    "global": {"workers": 2)" +
         global + R"(},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(serverPort) + R"("}]}]
  })";
}

// One keep-alive HTTP request on an open connection; returns the body ("NAME\n" from the origin).
std::string askOrigin(int fd) {
  if (!sendAll(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")) return "<send failed>";
  std::string head = recvUntil(fd, "\r\n\r\n");
  auto at = head.find("Content-Length: ");
  if (at == std::string::npos) return "<no response: " + head + ">";
  size_t length = std::stoul(head.substr(at + 16));
  return recvExactly(fd, length);
}

std::string askNew(std::uint16_t port) {
  auto fd = connectTo(port);
  return fd ? askOrigin(fd.get()) : "<connect failed>";
}

// Sends `signal` and waits for generation `id` to serve.
void reloadTo(Molt& molt, unsigned id, int signal = SIGUSR2) {
  size_t from = molt.process().lines().size();
  molt.process().signal(signal);
  INFO(molt.process().output());
  REQUIRE_LINE(molt.process(), "generation " + std::to_string(id) + " serving", 20s, from);
}

// Waits until both workers of `generation` took their drain order: from then on, only newer
// generations accept.
void awaitDrainOrders(Molt& molt, unsigned generation) {
  for (int slot = 0; slot < 2; ++slot)
    REQUIRE_LINE(
        molt.process(),
        "worker gen " + std::to_string(generation) + " slot " + std::to_string(slot) + ": draining",
        5s);
}

std::string psArgs(pid_t pid) {
  Child ps({"/bin/ps", "-o", "args=", "-p", std::to_string(pid)});
  ps.waitExit();
  auto lines = ps.lines();
  std::string args = lines.empty() ? "" : lines[0];
  while (!args.empty() && args.back() == ' ') args.pop_back();  // ps pads the cmdline area
  return args;
}

}  // namespace

TEST_CASE("a connection held through a reload keeps its generation until it closes",
          "[reload][integration]") {
  Origin a("a"), b("b");
  Molt molt(config(a.httpPort()));
  std::uint16_t port = molt.port("fe");
  auto held = connectTo(port);
  REQUIRE(askOrigin(held.get()) == "a\n");
  auto oldWorkers = molt.workerPids(1);

  molt.rewriteConfig(config(b.httpPort()));
  reloadTo(molt, 2);
  REQUIRE(molt.port("fe", 2) == port);  // the same listening socket, not a rebind
  // Until an old worker has taken its drain order it may still accept; after, never.
  awaitDrainOrders(molt, 1);
  for (int i = 0; i < 10; ++i) REQUIRE(askNew(port) == "b\n");
  REQUIRE(askOrigin(held.get()) == "a\n");  // still served by generation 1
  REQUIRE_LINE(molt.process(),
               R"(generation 1 draining \(replaced\): 2 workers, \d+ connections left)", 5s);

  held.reset();
  REQUIRE_LINE(molt.process(), "generation 1 gone", 10s);
  for (pid_t pid : oldWorkers) REQUIRE_FALSE(processAlive(pid));
  REQUIRE(askNew(port) == "b\n");
}

TEST_CASE("20 reloads under a continuous client loop lose no connection",
          "[reload][integration][load]") {
  Origin origin;
  Molt molt(config(origin.echoPort()));
  std::uint16_t port = molt.port("fe");
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 100000 && !stop; ++i) {
        auto fd = connectTo(port, 5s);
        std::string message = "c" + std::to_string(c) + "-" + std::to_string(i);
        bool good =
            fd && sendAll(fd.get(), message) && recvExactly(fd.get(), message.size()) == message;
        (good ? ok : failed)++;
      }
    });
  }
  for (unsigned id = 2; id <= 21; ++id) reloadTo(molt, id, id % 2 ? SIGHUP : SIGUSR2);
  std::this_thread::sleep_for(200ms);
  stop = true;
  for (auto& t : clients) t.join();
  INFO("ok " << ok << " failed " << failed);
  REQUIRE(failed == 0);
  REQUIRE(ok > 100);
}

TEST_CASE("a bad config on reload changes nothing and the error is logged",
          "[reload][integration]") {
  Origin origin("a");
  Molt molt(config(origin.httpPort()));
  std::uint16_t port = molt.port("fe");
  molt.rewriteConfig(R"({"global": {"workers": 0}, "frontends": [], "backends": []})");
  size_t from = molt.process().lines().size();
  molt.process().signal(SIGHUP);
  REQUIRE_LINE(molt.process(), R"(molt\.json:1:\d+: global\.workers: )", 10s, from);
  REQUIRE_LINE(molt.process(), R"(reload failed: .*global\.workers.*generation 1 serving)", 10s,
               from);
  REQUIRE(askNew(port) == "a\n");
  // And a good config afterwards reloads normally.
  molt.rewriteConfig(config(origin.httpPort()));
  reloadTo(molt, 2);
}

TEST_CASE("reloads asked for while one runs are coalesced into one more", "[reload][integration]") {
  Origin origin;
  // 200k template servers make each generation take a while to start, so the requests below
  // land while generation 2 is still starting.
  std::string big = R"({"global": {"workers": 2},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
                    std::to_string(origin.echoPort()) + R"("},
      {"template": "spare", "from": 1, "to": 200000, "address": "127.0.0.1:1", "disabled": true}]}]})";
  Molt molt(big);
  size_t from = molt.process().lines().size();
  molt.process().signal(SIGUSR2);
  REQUIRE_LINE(molt.process(), "reloading .* as generation 2", 10s, from);
  for (int i = 0; i < 4; ++i) {
    molt.process().signal(i % 2 ? SIGHUP : SIGUSR2);
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE_LINE(molt.process(), "generation 3 serving", 30s);
  REQUIRE_LINE(molt.process(), "reload queued until generation 2 serves", 5s);
  std::this_thread::sleep_for(1s);
  INFO(molt.process().output());
  REQUIRE_FALSE(molt.process().waitForLine("generation 4", 0ms));
}

TEST_CASE("hard_stop_after stops a draining generation that still has connections",
          "[reload][integration]") {
  Origin origin;
  Molt molt(config(origin.echoPort(), R"(, "hard_stop_after": "1s", "migrate": false)"));
  std::uint16_t port = molt.port("fe");
  auto held = connectTo(port);
  REQUIRE(sendAll(held.get(), "x"));
  REQUIRE(recvExactly(held.get(), 1) == "x");
  reloadTo(molt, 2);
  REQUIRE_LINE(
      molt.process(),
      R"(generation 1: stopping \d+ workers with 1 connections left \(hard_stop_after reached\))",
      10s);
  bool eof = false;
  recvUntilEof(held.get(), &eof);
  REQUIRE_LINE(molt.process(), "generation 1 gone", 10s);
}

TEST_CASE("past max_old_generations the oldest draining generation is stopped",
          "[reload][integration]") {
  Origin origin;
  Molt molt(config(origin.echoPort(), R"(, "max_old_generations": 1, "migrate": false)"));
  std::uint16_t port = molt.port("fe");
  auto first = connectTo(port);
  REQUIRE(sendAll(first.get(), "1"));
  REQUIRE(recvExactly(first.get(), 1) == "1");
  reloadTo(molt, 2);
  awaitDrainOrders(molt, 1);
  auto second = connectTo(port);
  REQUIRE(sendAll(second.get(), "2"));
  REQUIRE(recvExactly(second.get(), 1) == "2");
  reloadTo(molt, 3);
  REQUIRE_LINE(molt.process(),
               R"(generation 1: stopping \d+ workers .*more than max_old_generations=1 draining)",
               10s);
  REQUIRE_LINE(molt.process(), "generation 1 gone", 10s);
  // Generation 2 keeps its connection.
  REQUIRE(sendAll(second.get(), "still"));
  REQUIRE(recvExactly(second.get(), 5) == "still");
}

TEST_CASE("process titles show generations, slots and draining connections",
          "[reload][integration][title]") {
  Origin origin;
  Molt molt(config(origin.echoPort(), R"(, "migrate": false)"));
  std::uint16_t port = molt.port("fe");
  REQUIRE(psArgs(molt.process().pid()) == "molt: master gen 1");
  auto workers = molt.workerPids(1);
  std::vector<std::string> titles = {psArgs(workers[0]), psArgs(workers[1])};
  std::sort(titles.begin(), titles.end());
  REQUIRE(titles ==
          std::vector<std::string>{"molt: worker gen 1 slot 0", "molt: worker gen 1 slot 1"});

  auto held = connectTo(port);
  REQUIRE(sendAll(held.get(), "x"));
  REQUIRE(recvExactly(held.get(), 1) == "x");
  reloadTo(molt, 2);
  bool sawDraining = false;
  for (int i = 0; i < 100 && !sawDraining; ++i) {
    for (pid_t pid : workers)
      if (psArgs(pid) == "molt: worker gen 1 draining conns=1 stop in 30m") sawDraining = true;
    if (!sawDraining) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(sawDraining);
  REQUIRE(psArgs(molt.process().pid()) == "molt: master gen 2 (1 draining)");
}

TEST_CASE("a binary upgrade re-execs the master and keeps workers, listeners and connections",
          "[reload][integration][upgrade]") {
  Origin origin;
  CopiedMolt molt(config(origin.echoPort()));
  Child& master = *molt.master;
  std::uint16_t port = molt.port("fe");
  auto held = connectTo(port);
  REQUIRE(sendAll(held.get(), "before"));
  REQUIRE(recvExactly(held.get(), 6) == "before");

  // Replace the file the way a package manager does: a new inode renamed over the old path.
  CopiedMolt::install(molt.binary + ".new");
  std::filesystem::rename(molt.binary + ".new", molt.binary);
  struct stat replaced {};
  REQUIRE(stat(molt.binary.c_str(), &replaced) == 0);
  master.signal(SIGUSR2);
  REQUIRE_LINE(master, "changed on disk; re-executing the master", 10s);
  REQUIRE_LINE(master, "upgrade: adopted generation 1 \\(serving\\) with 2 workers", 10s);
  REQUIRE_LINE(master, "generation 2 serving", 20s);
  struct stat running {};
  REQUIRE(stat(("/proc/" + std::to_string(master.pid()) + "/exe").c_str(), &running) == 0);
  REQUIRE(running.st_ino == replaced.st_ino);  // the master now runs the new file
  REQUIRE(sendAll(held.get(), "after"));       // the old worker still carries the connection
  REQUIRE(recvExactly(held.get(), 5) == "after");
  auto fresh = connectTo(port);
  REQUIRE(sendAll(fresh.get(), "new"));
  REQUIRE(recvExactly(fresh.get(), 3) == "new");
  fresh.reset();
  held.reset();
  REQUIRE_LINE(master, "generation 1 gone", 10s);
  master.signal(SIGTERM);
  auto status = master.waitExit(15s);
  REQUIRE(status);
  REQUIRE(WEXITSTATUS(*status) == 0);
}

TEST_CASE("touching the binary forces a re-exec of the same file",
          "[reload][integration][upgrade]") {
  Origin origin;
  CopiedMolt molt(config(origin.echoPort()));
  std::filesystem::last_write_time(molt.binary, std::filesystem::file_time_type::clock::now());
  molt.master->signal(SIGUSR2);
  REQUIRE_LINE(*molt.master, "re-executing the master", 10s);
  REQUIRE_LINE(*molt.master, "generation 2 serving", 20s);
}
