// End-to-end: faults from outside molt (issue 14) — a worker at its descriptor limit, a server
// flapping under load, a state file on a full or read-only file system, the master killed.
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/http_client.hpp"
#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;
using nlohmann::json;

namespace {

std::string httpConfig(unsigned workers, const std::string& servers, const std::string& global = "",
                       const std::string& backendExtra = "") {
  return R"({"global": {"workers": )" + std::to_string(workers) + global + R"(},
    "frontends": [{"name": "fe", "mode": "http", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", )" +
         backendExtra + R"("servers": [)" + servers + "]}]}";
}

std::string server(const std::string& name, std::uint16_t port) {
  return R"({"name": ")" + name + R"(", "address": "127.0.0.1:)" + std::to_string(port) + "\"}";
}

std::size_t countLines(Child& child, const std::string& needle) {
  std::size_t n = 0;
  for (const auto& line : child.lines())
    if (line.find(needle) != std::string::npos) ++n;
  return n;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void requireOk(const json& answer) {
  INFO(answer.dump());
  REQUIRE(answer["ok"] == true);
}

// The origin that answered "/" through `port` ("a", "b"), or the status.
std::string originOf(std::uint16_t port) {
  Response r = request(port, "/");
  return r.status == 200 ? r.header("x-origin") : "status " + std::to_string(r.status);
}

// A tmpfs of `size` mounted on `path` for the test's life (unmounted lazily at its end).
class Tmpfs {
 public:
  Tmpfs(const std::string& path, const std::string& size) : path_(path) {
    std::string options = "size=" + size + ",mode=0700";
    mounted_ = ::mount("molt-test", path.c_str(), "tmpfs", 0, options.c_str()) == 0;
    INFO("mount tmpfs on " << path << ": " << std::strerror(errno)
                           << " (this test needs root with CAP_SYS_ADMIN)");
    REQUIRE(mounted_);
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  // Remounts read-only (true) or read-write.
  void setReadOnly(bool readOnly) const {
    unsigned long flags = MS_REMOUNT | (readOnly ? MS_RDONLY : 0);
    INFO("remount " << path_ << ": " << std::strerror(errno));
    REQUIRE(::mount("molt-test", path_.c_str(), "tmpfs", flags, nullptr) == 0);
  }
  // Writes a file until the file system is full; returns its path.
  std::string fill() const {
    std::string filler = path_ + "/filler";
    std::ofstream out(filler, std::ios::binary);
    std::string block(4096, 'x');
    for (int i = 0; i < 1 << 16 && out.write(block.data(), block.size()); ++i) out.flush();
    return filler;
  }

 private:
  std::string path_;
  bool mounted_ = false;
};

}  // namespace

TEST_CASE("a worker at its descriptor limit pauses accepting, logs once and resumes",
          "[faults][integration]") {
  Origin a("a");
  // 128 descriptors: the worker pauses with some 60 connections open, long before accept() would
  // fail.
  Molt molt(httpConfig(1, server("a", a.httpPort())), {}, true,
            {"/usr/bin/prlimit", "--nofile=128:128"});
  std::uint16_t port = molt.port("fe");
  std::vector<pid_t> workers = molt.workerPids();
  REQUIRE(workers.size() == 1);

  // 150 idle clients: the kernel completes every handshake, the worker takes what it can hold.
  std::vector<molt::common::UniqueFd> clients;
  for (int i = 0; i < 150; ++i) {
    clients.push_back(connectTo(port));
    REQUIRE(clients.back());
  }
  REQUIRE_LINE(molt.process(), "few descriptors left: accepting paused", 10s);
  // Retried every 100 ms while paused, logged once per 10 s.
  std::this_thread::sleep_for(1500ms);
  INFO(molt.process().output());
  REQUIRE(countLines(molt.process(), "accepting paused") == 1);
  REQUIRE(processAlive(workers[0]));

  // 100 clients leave: the worker accepts again, and the connections that waited in the queue
  // are served like the others.
  std::size_t from = molt.process().lines().size();
  clients.erase(clients.begin(), clients.begin() + 100);
  REQUIRE_LINE(molt.process(), "accepting again", 10s, from);
  int ok = 0;
  for (auto& client : clients) {
    REQUIRE(sendAll(client.get(), "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    Reader reader(client.get());
    if (readResponse(reader).status == 200) ++ok;
  }
  REQUIRE(ok == 50);
  REQUIRE(request(port, "/").status == 200);
  REQUIRE(molt.workerPids() == workers);  // never respawned
  REQUIRE(countLines(molt.process(), "exited") == 0);
}

TEST_CASE("a server flapping under load costs no request", "[faults][integration]") {
  Origin a("a");
  auto b = std::make_unique<Origin>("b");
  std::uint16_t bPort = b->httpPort();
  Molt molt(httpConfig(2, server("a", a.httpPort()) + ", " + server("b", bPort), "",
                       R"("check": {"type": "http", "path": "/", "interval": "100ms",
                                    "timeout": "300ms", "rise": 1, "fall": 1}, )"));
  std::uint16_t port = molt.port("fe");
  std::vector<pid_t> workers = molt.workerPids();

  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::map<std::string, int> outcomes;  // origin name or "status N"
  std::vector<std::thread> load;
  for (int t = 0; t < 2; ++t)
    load.emplace_back([&] {
      while (!stop) {
        std::string outcome = originOf(port);
        std::lock_guard lock(mutex);
        ++outcomes[outcome];
      }
    });
  // b dies and comes back on its port 8 times, every 300 ms.
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(300ms);
    b.reset();
    std::this_thread::sleep_for(300ms);
    b = std::make_unique<Origin>("b", bPort);
  }
  std::this_thread::sleep_for(500ms);
  stop = true;
  for (auto& thread : load) thread.join();

  std::string seen;
  for (const auto& [outcome, count] : outcomes) seen += outcome + "=" + std::to_string(count) + " ";
  INFO(seen);
  INFO(molt.process().output());
  REQUIRE(outcomes.size() == 2);  // only "a" and "b": not one failed request
  REQUIRE(outcomes["a"] + outcomes["b"] > 200);
  REQUIRE(countLines(molt.process(), "server b is DOWN") >= 1);
  REQUIRE(countLines(molt.process(), "server b is UP") >= 1);
  REQUIRE(molt.workerPids() == workers);
}

TEST_CASE("a state file that cannot be written refuses the change and loses nothing",
          "[faults][integration]") {
  Origin a("a"), b("b");
  TempDir dir;
  std::filesystem::create_directory(dir.path() + "/state");
  Tmpfs disk(dir.path() + "/state", "64k");
  std::string socket = dir.path() + "/api.sock";
  std::string stateFile = dir.path() + "/state/journal.jsonl";
  std::string config =
      httpConfig(2, server("s0", a.httpPort()),
                 R"(, "api_socket": ")" + socket + R"(", "state_file": ")" + stateFile + "\"");
  auto maintS0 =
      json{{"cmd", "server.set"}, {"backend", "be"}, {"server", "s0"}, {"state", "maint"}};
  auto addS1 =
      json{{"cmd", "server.add"},
           {"backend", "be"},
           {"server", {{"name", "s1"}, {"address", "127.0.0.1:" + std::to_string(b.httpPort())}}}};
  {
    Molt molt(config);
    std::uint16_t port = molt.port("fe");
    REQUIRE_LINE(molt.process(), "api: listening on", 10s);
    requireOk(askApiJson(socket, addS1));
    std::string journalled = readFile(stateFile);
    REQUIRE(journalled.find("\"s1\"") != std::string::npos);

    // Disk full: refused, with the system's reason; the file and the serving state as they were.
    std::string filler = disk.fill();
    json full = askApiJson(socket, maintS0);
    INFO(full.dump());
    REQUIRE(full["ok"] == false);
    REQUIRE(full["error"].get<std::string>().find("state_file: ") == 0);
    REQUIRE(full["error"].get<std::string>().find("No space left on device") != std::string::npos);
    REQUIRE(readFile(stateFile) == journalled);
    std::set<std::string> origins;
    for (int i = 0; i < 20; ++i) origins.insert(originOf(port));
    REQUIRE(origins == std::set<std::string>{"a", "b"});  // s0 still in service

    // Read-only: the same.
    std::filesystem::remove(filler);
    disk.setReadOnly(true);
    json readOnly = askApiJson(socket, maintS0);
    INFO(readOnly.dump());
    REQUIRE(readOnly["ok"] == false);
    REQUIRE(readOnly["error"].get<std::string>().find("Read-only file system") !=
            std::string::npos);
    REQUIRE(readFile(stateFile) == journalled);
    // Each refusal logged (the line may reach this test's reader just after the API's answer).
    for (int i = 0; i < 50 && countLines(molt.process(), "state_file: ") < 2; ++i)
      std::this_thread::sleep_for(100ms);
    REQUIRE(countLines(molt.process(), "state_file: ") == 2);

    // Writable again: the change applies and is kept.
    disk.setReadOnly(false);
    requireOk(askApiJson(socket, maintS0));
    for (int i = 0; i < 10; ++i) REQUIRE(originOf(port) == "b");
  }
  // What the file kept is what a restart serves.
  Molt again(config);
  std::uint16_t port = again.port("fe");
  for (int i = 0; i < 10; ++i) REQUIRE(originOf(port) == "b");
}

TEST_CASE(
    "SIGKILL of the master: workers finish their connections and exit; a restart serves "
    "the same runtime state",
    "[faults][integration]") {
  Origin a("a"), b("b");
  TempDir dir;
  std::string socket = dir.path() + "/api.sock";
  std::string config = httpConfig(
      2, server("s0", a.httpPort()),
      R"(, "api_socket": ")" + socket + R"(", "state_file": ")" + dir.path() + "/journal.jsonl\"");
  // The workers outlive the master: as its subreaper, this process reaps them by pid.
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  Molt molt(config);
  std::uint16_t port = molt.port("fe");
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  std::vector<pid_t> workers = molt.workerPids();
  REQUIRE(workers.size() == 2);
  requireOk(askApiJson(
      socket,
      {{"cmd", "server.add"},
       {"backend", "be"},
       {"server", {{"name", "s1"}, {"address", "127.0.0.1:" + std::to_string(b.httpPort())}}}}));
  requireOk(askApiJson(
      socket, {{"cmd", "server.set"}, {"backend", "be"}, {"server", "s0"}, {"state", "maint"}}));
  REQUIRE(originOf(port) == "b");

  // A request in flight (the origin answers in 1.5 s) when the master dies.
  auto inFlight = connectTo(port);
  REQUIRE(sendAll(inFlight.get(), "GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::this_thread::sleep_for(300ms);
  REQUIRE(::kill(molt.process().pid(), SIGKILL) == 0);
  REQUIRE(molt.process().waitExit(5s));

  Reader reader(inFlight.get());
  Response answer = readResponse(reader);
  REQUIRE(answer.status == 200);
  REQUIRE(answer.header("x-origin") == "b");
  REQUIRE(reader.closed());  // then the worker closes the connection: it is leaving
  for (pid_t pid : workers) {
    int status = 0;
    pid_t reaped = 0;
    for (int i = 0; i < 100 && reaped == 0; ++i) {
      reaped = ::waitpid(pid, &status, WNOHANG);
      if (reaped == 0) std::this_thread::sleep_for(100ms);
    }
    INFO("worker " << pid);
    REQUIRE(reaped == pid);
    REQUIRE(WIFEXITED(status));
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  INFO(molt.process().output());
  REQUIRE(countLines(molt.process(), "master gone") >= 2);

  // A new master reads the state file: s1 serves, s0 stays in maintenance.
  Molt again(config);
  std::uint16_t againPort = again.port("fe");
  for (int i = 0; i < 10; ++i) REQUIRE(originOf(againPort) == "b");
}
