// End-to-end: the runtime API socket and `molt ctl` (issue: runtime API; base commands).
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;
using nlohmann::json;

namespace {

std::string config(const TempDir& dir, std::uint16_t serverPort) {
  return R"({"global": {"workers": 2, "api_socket": ")" + dir.path() + R"(/api.sock"},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(serverPort) + R"("}]}]})";
}

struct Api {
  Origin origin;
  TempDir dir;
  Molt molt;
  std::string socket;
  Api() : molt(config(dir, origin.echoPort())), socket(dir.path() + "/api.sock") {
    REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  }
};

}  // namespace

TEST_CASE("the api socket is created with mode 0600", "[api][integration]") {
  Api api;
  struct stat st {};
  REQUIRE(stat(api.socket.c_str(), &st) == 0);
  REQUIRE(S_ISSOCK(st.st_mode));
  REQUIRE((st.st_mode & 0777) == 0600);
}

TEST_CASE("proc lists the master and every worker with memory from smaps_rollup",
          "[api][integration]") {
  Api api;
  json r = askApi(api.socket, R"({"cmd": "proc"})");
  INFO(r.dump());
  REQUIRE(r["ok"] == true);
  REQUIRE(r["master"]["pid"] == api.molt.process().pid());
  REQUIRE(r["master"]["memory"]["pss"].get<std::uint64_t>() > 0);
  REQUIRE(r["generations"].size() == 1);
  const auto& workers = r["generations"][0]["workers"];
  REQUIRE(workers.size() == 2);
  auto pids = api.molt.workerPids(1);
  for (const auto& w : workers) {
    REQUIRE(std::find(pids.begin(), pids.end(), w["pid"].get<pid_t>()) != pids.end());
    REQUIRE(w["memory"]["private"].get<std::uint64_t>() > 0);
    REQUIRE(w["memory"]["rss"].get<std::uint64_t>() >= w["memory"]["pss"].get<std::uint64_t>());
  }
}

TEST_CASE("reload through the api answers once the new generation serves", "[api][integration]") {
  Api api;
  json r = askApi(api.socket, R"({"cmd": "reload"})");
  INFO(r.dump());
  REQUIRE(r["ok"] == true);
  REQUIRE(r["generation"] == 2);
  REQUIRE_LINE(api.molt.process(), "generation 2 serving", 5s);
  json proc = askApi(api.socket, R"({"cmd": "proc"})");
  REQUIRE(proc["generations"].back()["id"] == 2);
}

TEST_CASE("a failed reload is answered with its errors and kept for the errors command",
          "[api][integration]") {
  Api api;
  api.molt.rewriteConfig(R"({"global": {"workers": "two"}})");
  json r = askApi(api.socket, R"({"cmd": "reload"})");
  INFO(r.dump());
  REQUIRE(r["ok"] == false);
  REQUIRE(r["error"].get<std::string>().find("global.workers: expected an integer") !=
          std::string::npos);
  json errors = askApi(api.socket, R"({"cmd": "errors"})");
  REQUIRE(errors["ok"] == true);
  REQUIRE(errors["errors"].size() >= 1);
}

TEST_CASE("molt ctl prints tables, --json prints the response, and exit status follows ok",
          "[api][integration][ctl]") {
  Api api;
  Child proc({moltBinary(), "ctl", "-s", api.socket, "proc"});
  REQUIRE(proc.waitExit() == std::optional<int>(0));
  REQUIRE_LINE(
      proc,
      R"(^GEN\s+PHASE\s+SLOT\s+PID\s+CONNS\s+PARKED\s+H2\s+IN\s+OUT\s+TLS\s+RSS\s+PSS\s+PRIVATE)",
      5s);
  REQUIRE_LINE(proc, R"(^1\s+ready\s+0\s+\d+\s+0\s+0\s+0/0\s+0\s+0\s+0\s+[\d.]+ [KM]iB)", 5s);

  Child raw({moltBinary(), "ctl", "-s", api.socket, "--json", "errors"});
  REQUIRE(raw.waitExit() == std::optional<int>(0));
  REQUIRE(json::parse(raw.output())["ok"] == true);

  Child bad({moltBinary(), "ctl", "-s", api.socket, "no.such.command"});
  auto status = bad.waitExit();
  REQUIRE(status);
  REQUIRE(WEXITSTATUS(*status) == 1);
  REQUIRE_LINE(bad, "unknown command 'no.such.command'", 5s);

  Child byConfig({moltBinary(), "ctl", "-f", api.molt.configPath(), "reload"});
  REQUIRE(byConfig.waitExit(20s) == std::optional<int>(0));
  REQUIRE_LINE(byConfig, "generation 2 serving", 5s);
}

TEST_CASE("a client with another uid is refused", "[api][integration][security]") {
  Api api;
  chmod(api.dir.path().c_str(), 0755);
  chmod(api.socket.c_str(), 0666);  // the uid check must hold even if the file mode were open
  pid_t child = fork();
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    json r = askApi(api.socket, R"({"cmd": "proc"})");
    bool refused = r.is_object() && r["ok"] == false &&
                   r["error"].get<std::string>().find("permission denied") != std::string::npos;
    _exit(refused ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE_LINE(api.molt.process(), "api: refused a client with uid 65534", 5s);
}

TEST_CASE("50 concurrent api clients are all answered", "[api][integration]") {
  Api api;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 50; ++i)
    clients.emplace_back([&] {
      auto fd = connectApi(api.socket);
      for (int j = 0; j < 5; ++j)
        if (fd && askApi(fd.get(), R"({"cmd": "proc"})")["ok"] == true) ++ok;
    });
  for (auto& t : clients) t.join();
  REQUIRE(ok == 250);
}

TEST_CASE("malformed api input gets an error naming the problem and never hurts the master",
          "[api][integration][robustness]") {
  Api api;
  struct Case {
    std::string line, error;
  };
  std::vector<Case> cases = {
      {"{", "malformed JSON"},
      {"[1, 2, 3]", "must be a JSON object"},
      {"\"proc\"", "must be a JSON object"},
      {"{}", "cmd: missing"},
      {R"({"cmd": 42})", "cmd: missing, or not a string"},
      {R"({"cmd": null})", "cmd: missing, or not a string"},
      {R"({"cmd": "prc"})", "unknown command 'prc'"},
      {R"({"cmd": ""})", "unknown command ''"},
      {std::string("\x01\x02\xff\xfe garbage"), "malformed JSON"},
      {R"({"cmd": "proc", "cmd": "reload"})", ""},  // duplicate keys: answered either way
  };
  auto fd = connectApi(api.socket);
  for (const auto& c : cases) {
    json r = askApi(fd.get(), c.line);
    INFO("input: " << c.line << " answer: " << r.dump());
    REQUIRE(r.is_object());
    if (c.error.empty()) continue;
    REQUIRE(r["ok"] == false);
    REQUIRE(r["error"].get<std::string>().find(c.error) != std::string::npos);
  }
  // A 2 MiB line without newline, then a client that vanishes mid-line.
  auto big = connectApi(api.socket);
  json r = askApi(big.get(), std::string(2 << 20, 'x'));
  REQUIRE(r["error"] == "request line longer than 1 MiB");
  {
    auto vanishing = connectApi(api.socket);
    sendAll(vanishing.get(), R"({"cmd": "pr)");
  }
  REQUIRE(askApi(api.socket, R"({"cmd": "proc"})")["ok"] == true);
  REQUIRE(api.molt.process().running());
}

TEST_CASE("servers lists each server with its state, check and connections from all workers",
          "[api][integration]") {
  Api api;
  auto held = connectTo(api.molt.port("fe"));
  REQUIRE(sendAll(held.get(), "x"));
  REQUIRE(recvExactly(held.get(), 1) == "x");
  json r;
  for (int i = 0; i < 100; ++i) {  // the count is shared as soon as the connect starts
    r = askApi(api.socket, R"({"cmd": "servers", "backend": "be"})");
    if (r["servers"][0]["connections"] == 1) break;
    std::this_thread::sleep_for(10ms);
  }
  INFO(r.dump());
  REQUIRE(r["ok"] == true);
  REQUIRE(r["servers"].size() == 1);
  REQUIRE(r["servers"][0]["name"] == "o");
  REQUIRE(r["servers"][0]["state"] == "ready");
  REQUIRE(r["servers"][0]["check"] == "none");
  REQUIRE(r["servers"][0]["connections"] == 1);
  REQUIRE(askApi(api.socket, R"({"cmd": "servers", "backend": "nope"})")["error"] ==
          "backend: unknown backend 'nope'");
  REQUIRE(askApi(api.socket, R"({"cmd": "servers", "backend": 3})")["error"] ==
          "backend: expected a string");
  Child table({moltBinary(), "ctl", "-s", api.socket, "servers"});
  REQUIRE(table.waitExit() == std::optional<int>(0));
  REQUIRE_LINE(table, R"(^BACKEND\s+SERVER\s+ADDRESS\s+WEIGHT\s+STATE\s+CHECK\s+CONNS)", 5s);
  REQUIRE_LINE(table, R"(^be\s+o\s+127\.0\.0\.1:\d+\s+1\s+ready\s+none\s+1)", 5s);
}

TEST_CASE("generations whose workers exit while the master re-execs are not kept forever",
          "[api][integration][upgrade]") {
  Api api;
  // A reload, then at once an upgrade: the old generation's workers exit while the master
  // execs (workers the inventory lists as exited must not be waited for).
  for (int i = 0; i < 8; ++i) {
    REQUIRE(askApi(api.socket, R"({"cmd": "reload"})")["ok"] == true);
    REQUIRE(askApi(api.socket, R"({"cmd": "upgrade"})")["ok"] == true);
    REQUIRE_LINE(api.molt.process(), "binary upgrade: reloading", 10s);
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  json r;
  do {
    std::this_thread::sleep_for(100ms);
    r = askApi(api.socket, R"({"cmd": "proc"})");
  } while (r["generations"].size() != 1 && std::chrono::steady_clock::now() < deadline);
  INFO(r.dump());
  REQUIRE(r["generations"].size() == 1);
  REQUIRE(r["generations"][0]["phase"] == "serving");
  api.molt.process().signal(SIGTERM);
  auto status = api.molt.process().waitExit(15s);
  REQUIRE(status);
  REQUIRE(WEXITSTATUS(*status) == 0);
}
