// End-to-end: the real molt binary proxying TCP to the project's origin (issue: foundation).
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/proc_memory.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;

namespace {

std::string tcpConfig(std::uint16_t serverPort, const std::string& extraBackend = "",
                      const std::string& servers = "") {
  std::string list = servers.empty() ? R"({"name": "o1", "address": "127.0.0.1:)" +
                                           std::to_string(serverPort) + R"("})"
                                     : servers;
  return R"({
    // two workers, one tcp frontend on a kernel-chosen port
    "global": {"workers": 2, "hard_stop_after": "20s"},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", )" +
         extraBackend + R"( "servers": [)" + list + R"(]}]
  })";
}

std::string randomBytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(gen());
  return out;
}

// Echoes `payload` through the proxy: sends it, half-closes, reads everything back.
std::string echoThrough(std::uint16_t port, const std::string& payload) {
  auto fd = connectTo(port);
  if (!fd) return "<connect failed>";
  std::string received;
  std::thread reader([&] { received = recvUntilEof(fd.get()); });
  sendAll(fd.get(), payload);
  shutdown(fd.get(), SHUT_WR);
  reader.join();
  return received;
}

}  // namespace

TEST_CASE("bytes flow both ways through molt and half-close reaches both ends",
          "[tcp][integration]") {
  Origin origin;
  Molt molt(tcpConfig(origin.echoPort()));
  std::uint16_t port = molt.port("fe");
  std::string payload = randomBytes(4 << 20, 1);
  std::string back = echoThrough(port, payload);
  REQUIRE(back.size() == payload.size());
  REQUIRE(back == payload);
}

TEST_CASE("200 concurrent connections through molt all complete", "[tcp][integration]") {
  Origin origin;
  Molt molt(tcpConfig(origin.echoPort()));
  std::uint16_t port = molt.port("fe");
  constexpr int kClients = 200;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      std::string payload = randomBytes(64 * 1024, static_cast<unsigned>(i));
      if (echoThrough(port, payload) == payload) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  REQUIRE(ok == kClients);
}

TEST_CASE("a refused server is skipped and the connection goes to the next one",
          "[tcp][integration]") {
  Origin origin;
  std::string servers = R"({"name": "dead", "address": "127.0.0.1:)" +
                        std::to_string(unusedPort()) +
                        R"("}, {"name": "live", "address": "127.0.0.1:)" +
                        std::to_string(origin.echoPort()) + R"("})";
  Molt molt(tcpConfig(0, "", servers));
  std::uint16_t port = molt.port("fe");
  for (int i = 0; i < 6; ++i)
    REQUIRE(echoThrough(port, "ping " + std::to_string(i)) == "ping " + std::to_string(i));
  REQUIRE_LINE(molt.process(), "server dead .*connection refused", 5s);
}

TEST_CASE("connections fail cleanly when no server can be reached", "[tcp][integration]") {
  std::string servers =
      R"({"name": "dead", "address": "127.0.0.1:)" + std::to_string(unusedPort()) + R"("})";
  Molt molt(tcpConfig(0, R"("retries": 2,)", servers));
  auto fd = connectTo(molt.port("fe"));
  REQUIRE(fd);
  bool eof = false;
  recvUntilEof(fd.get(), &eof);  // closed by the proxy, not left hanging
  REQUIRE_LINE(molt.process(), "no server could take the connection", 5s);
}

TEST_CASE("an idle connection is closed after the backend's tunnel timeout", "[tcp][integration]") {
  Origin origin;
  Molt molt(tcpConfig(origin.echoPort(), R"("timeouts": {"tunnel": "300ms"},)"));
  auto fd = connectTo(molt.port("fe"));
  REQUIRE(sendAll(fd.get(), "x"));
  REQUIRE(recvExactly(fd.get(), 1) == "x");
  auto start = std::chrono::steady_clock::now();
  bool eof = false;
  recvUntilEof(fd.get(), &eof);
  auto waited = std::chrono::steady_clock::now() - start;
  REQUIRE(eof);
  REQUIRE(waited >= 250ms);
  REQUIRE(waited < 5s);
}

TEST_CASE("a client that sends nothing is closed after the client timeout, not the tunnel's",
          "[tcp][integration][trust]") {
  Origin origin;
  std::string config = tcpConfig(origin.echoPort(), R"("timeouts": {"tunnel": "1h"},)");
  config.replace(config.find("\"default_backend\""), 17,
                 "\"timeouts\": {\"client\": \"500ms\"}, \"default_backend\"");
  Molt molt(config);
  // Before the fix a silent connection held a server connection for the whole tunnel timeout.
  auto silent = connectTo(molt.port("fe"));
  auto start = std::chrono::steady_clock::now();
  bool eof = false;
  recvUntilEof(silent.get(), &eof);
  REQUIRE(eof);
  REQUIRE(std::chrono::steady_clock::now() - start < 5s);
  // Once the client spoke, the tunnel timeout applies.
  auto talking = connectTo(molt.port("fe"), 2s);
  REQUIRE(sendAll(talking.get(), "x"));
  REQUIRE(recvExactly(talking.get(), 1) == "x");
  std::this_thread::sleep_for(1200ms);  // past the client timeout: still open
  REQUIRE(sendAll(talking.get(), "y"));
  REQUIRE(recvExactly(talking.get(), 1) == "y");
}

TEST_CASE("a client that stops reading holds the proxy's buffering to a bound",
          "[tcp][integration][backpressure]") {
  Origin origin;
  Molt molt(tcpConfig(origin.httpPort()));
  auto fd = connectTo(molt.port("fe"), 20s);
  int small = 64 * 1024;
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  constexpr size_t kBody = 200u << 20;
  REQUIRE(sendAll(fd.get(), "GET /size/" + std::to_string(kBody) +
                                " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::this_thread::sleep_for(1s);  // the origin pushes as fast as it can; nobody reads
  for (pid_t pid : molt.workerPids()) {
    INFO("worker " << pid << " VmRSS " << rssKiB(pid) << " KiB");
    if (!sanitizedBuild()) REQUIRE(rssKiB(pid) < 32 * 1024);
  }
  std::string all = recvUntilEof(fd.get());
  REQUIRE(all.size() > kBody);
}

TEST_CASE("a worker killed with SIGKILL is respawned and new connections succeed",
          "[tcp][integration][supervision]") {
  Origin origin;
  Molt molt(tcpConfig(origin.echoPort()));
  std::uint16_t port = molt.port("fe");
  auto before = molt.workerPids();
  REQUIRE(before.size() == 2);
  kill(before[0], SIGKILL);
  REQUIRE_LINE(
      molt.process(),
      "worker slot 0 pid " + std::to_string(before[0]) + R"( died unexpectedly \(signal 9)", 5s);
  REQUIRE_LINE(molt.process(), R"(generation 1: worker slot 0 started, pid (\d+))", 5s,
               /*fromLine=*/0);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (molt.workerPids()[0] == before[0] && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  auto after = molt.workerPids();
  REQUIRE(after[0] != before[0]);
  REQUIRE(processAlive(after[0]));
  for (int i = 0; i < 20; ++i) REQUIRE(echoThrough(port, "after respawn") == "after respawn");
}

TEST_CASE("workers are forked by the zygote, and a dead zygote costs only a slower respawn",
          "[tcp][integration][supervision][zygote]") {
  Origin origin;
  Molt molt(tcpConfig(origin.echoPort()));
  std::uint16_t port = molt.port("fe");
  auto zygoteLine = molt.process().waitForLine(R"(zygote started, pid (\d+))", 5s);
  REQUIRE(zygoteLine);
  pid_t zygote = std::stoi((*zygoteLine)[1]);
  auto workers = molt.workerPids();
  REQUIRE(workers.size() == 2);
  // Children of the master (CLONE_PARENT) running the same binary, never exec'd: they share the
  // zygote's relocated libraries, so a worker's private memory is its own heap alone.
  for (pid_t w : workers) {
    REQUIRE(processAlive(w));
    std::ifstream stat("/proc/" + std::to_string(w) + "/stat");
    std::string line((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string state;
    pid_t parent = 0;
    fields >> state >> parent;
    REQUIRE(parent == molt.process().pid());
    auto memory = molt::common::readProcessMemory(w);
    REQUIRE(memory);
    INFO("worker private " << memory->privateBytes);
    if (!sanitizedBuild()) REQUIRE(memory->privateBytes < (1u << 20));
  }
  // The zygote dies: the next worker is fork+exec'd and a new zygote started.
  size_t from = molt.process().lines().size();
  kill(zygote, SIGKILL);
  kill(workers[0], SIGKILL);
  REQUIRE_LINE(molt.process(), R"(generation 1: worker slot 0 started, pid (\d+))", 10s, from);
  REQUIRE_LINE(molt.process(), R"(zygote started, pid (\d+))", 10s, from);
  for (int i = 0; i < 10; ++i) REQUIRE(echoThrough(port, "after respawn") == "after respawn");
  // And the next respawn is the new zygote's again.
  from = molt.process().lines().size();
  kill(molt.workerPids()[1], SIGKILL);
  REQUIRE_LINE(molt.process(), R"(generation 1: worker slot 1 started, pid (\d+))", 10s, from);
  for (int i = 0; i < 10; ++i) REQUIRE(echoThrough(port, "again") == "again");
}

TEST_CASE("a worker holds only its control socket, its listeners and libuv's descriptors",
          "[tcp][integration][fds]") {
  Origin origin;
  Molt molt(tcpConfig(origin.echoPort()));
  molt.port("fe");
  for (pid_t pid : molt.workerPids()) {
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    int sockets = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      int fd = std::stoi(entry.path().filename());
      std::string target = std::filesystem::read_symlink(entry.path());
      INFO("worker " << pid << " fd " << fd << " -> " << target);
      if (fd <= 2) continue;  // stdio: the log goes to stderr
      if (target.rfind("socket:", 0) == 0) {
        ++sockets;
      } else {
        // libuv's own: the epoll instance, the eventfd and pipe behind uv_async and signal
        // handling, and the /dev/null it reserves to survive EMFILE in accept.
        bool libuv = target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]" ||
                     target.rfind("pipe:", 0) == 0 || target == "/dev/null";
        REQUIRE(libuv);
      }
    }
    REQUIRE(sockets == 2);  // fd 3 = control socket, plus the one listener
  }
}

TEST_CASE("SIGTERM stops the master and every worker with exit status 0",
          "[tcp][integration][stop]") {
  Origin origin;
  Molt molt(tcpConfig(origin.echoPort()));
  REQUIRE(echoThrough(molt.port("fe"), "hello") == "hello");
  auto workers = molt.workerPids();
  REQUIRE(workers.size() == 2);
  molt.process().signal(SIGTERM);
  auto status = molt.process().waitExit(15s);
  REQUIRE(status);
  REQUIRE(WIFEXITED(*status));
  REQUIRE(WEXITSTATUS(*status) == 0);
  for (pid_t pid : workers) REQUIRE_FALSE(processAlive(pid));
  REQUIRE_LINE(molt.process(), R"(worker slot \d+ pid \d+ exited \(exit 0\))", 1s);
}

TEST_CASE("SIGINT stops molt at once even with a connection open", "[tcp][integration][stop]") {
  Origin origin;
  Molt molt(tcpConfig(origin.echoPort()));
  auto fd = connectTo(molt.port("fe"));
  REQUIRE(sendAll(fd.get(), "held"));
  REQUIRE(recvExactly(fd.get(), 4) == "held");
  auto workers = molt.workerPids();
  molt.process().signal(SIGINT);
  auto status = molt.process().waitExit(10s);
  REQUIRE(status);
  REQUIRE(WIFEXITED(*status));
  REQUIRE(WEXITSTATUS(*status) == 0);
  for (pid_t pid : workers) REQUIRE_FALSE(processAlive(pid));
}

namespace {

// The real uid on the "Uid:" line of /proc/PID/status.
long uidOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value = -1;
  while (in >> key) {
    if (key == "Uid:") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return value;
}

}  // namespace

TEST_CASE("workers run as global.user and global.group while the master keeps its identity",
          "[tcp][integration][security]") {
  if (geteuid() != 0) SUCCEED("needs root to change identity");
  if (geteuid() != 0) return;
  Origin origin;
  std::string config = tcpConfig(origin.echoPort());
  config.replace(config.find(R"("hard_stop_after": "20s")"), 24,
                 R"("hard_stop_after": "20s", "user": "nobody", "group": "nogroup")");
  Molt molt(config);
  REQUIRE(echoThrough(molt.port("fe"), "as nobody") == "as nobody");
  REQUIRE(uidOf(molt.process().pid()) == 0);
  for (pid_t pid : molt.workerPids()) REQUIRE(uidOf(pid) == 65534);
}
