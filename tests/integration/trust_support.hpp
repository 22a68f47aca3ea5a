// Helpers of the trust tests (tests/integration/trust_*_test.cpp): issue 13's regression tests,
// which play a compromised worker, a broken binary or a hostile API client against a real molt.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"
#include "tests/support/notify_listener.hpp"
#include "tests/support/tls_client.hpp"

namespace molt::test::trust {

using namespace molt::test;
using nlohmann::json;

inline std::string httpConfig(const TempDir& dir, std::uint16_t serverPort) {
  return R"({"global": {"workers": 2, "api_socket": ")" + dir.path() + R"(/api.sock"},
    "frontends": [{"name": "fe", "mode": "http", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(serverPort) + R"("}]}]})";
}

// The worker's end of its control socket (fd 3 in every worker), duplicated into this process.
inline molt::common::UniqueFd stealControlSocket(pid_t worker) {
  molt::common::UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, worker, 0)));
  REQUIRE(pidfd);
  molt::common::UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), 3, 0)));
  INFO("pidfd_getfd: " << std::strerror(errno));
  REQUIRE(fd);
  return fd;
}

// The pid the slot's latest worker of generation 1 has, from the master's log.
inline pid_t slotPid(Molt& molt, unsigned slot) {
  pid_t pid = 0;
  for (const auto& line : molt.process().lines()) {
    std::string marker = "generation 1: worker slot " + std::to_string(slot) + " started, pid ";
    if (auto at = line.find(marker); at != std::string::npos)
      pid = std::stoi(line.substr(at + marker.size()));
  }
  return pid;
}

// Waits until `pid` is a worker that reported ready (before that, its fd 3 may still be the
// zygote's socket it was forked with).
inline void awaitReady(const std::string& socket, pid_t pid) {
  for (int i = 0; i < 200; ++i) {
    json proc = askApi(socket, R"({"cmd": "proc"})");
    for (const auto& g : proc.value("generations", json::array()))
      for (const auto& w : g["workers"])
        if (w["pid"] == pid && w["phase"] == "ready") return;
    usleep(50'000);
  }
  FAIL("worker " << pid << " never reported ready");
}

struct Hostile {
  const char* what;
  std::string datagram;
  bool withFd = false;
};

// A system account made for one test and removed with it.
struct ScratchUser {
  std::string name = "molt-t" + std::to_string(getpid());
  ScratchUser() {
    REQUIRE(std::system(("useradd --system --no-create-home --shell /usr/sbin/nologin " + name +
                         " 2>/dev/null")
                            .c_str()) == 0);
  }
  ~ScratchUser() { remove(); }
  void remove() const {
    int ignored = std::system(("userdel -f " + name + " 2>/dev/null").c_str());
    (void)ignored;
  }
};

inline uid_t uidOf(pid_t pid) {
  struct stat st {};
  std::string path = "/proc/" + std::to_string(pid);
  return stat(path.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

inline std::string tlsConfig(const TempDir& dir, std::uint16_t serverPort,
                             const std::string& cacheSize, const std::string& extraFrontend = "") {
  return R"({"global": {"workers": 2, "api_socket": ")" + dir.path() + R"(/api.sock"},
    "tls": {"session_cache": ")" +
         cacheSize + R"(", "tickets": false},
    "frontends": [)" +
         extraFrontend + R"({"name": "tls", "mode": "http",
      "bind": [{"address": "127.0.0.1:0", "tls": true}], "certificates": [")" +
         dir.path() +
         R"(/site.pem"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(serverPort) + R"("}]}]})";
}

// Asks the API at `socket` as uid/gid 65534 (nobody), in a child process; returns the answer.
inline json askAsNobody(const std::string& socket, const json& request) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    std::string answer = askApi(socket, request.dump()).dump();
    ssize_t ignored = write(fds[1], answer.data(), answer.size());
    (void)ignored;
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  return json::parse(text, nullptr, false);
}

inline std::string upgradeConfig(const std::string& socket, std::uint16_t serverPort) {
  return R"({"global": {"workers": 2, "api_socket": ")" + socket + R"("},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(serverPort) + R"("}]}]})";
}

// A fresh connection echoes.
inline bool httpOrEcho(std::uint16_t port) {
  auto fd = connectTo(port);
  return fd && sendAll(fd.get(), "x") && recvExactly(fd.get(), 1) == "x";
}

// An echo round trip on a held connection.
inline bool echoes(int fd, const std::string& text) {
  return sendAll(fd, text) && recvExactly(fd, text.size()) == text;
}

// The lines of /proc/PID/maps naming `what` ("molt-session-cache").
inline std::vector<std::string> mappingsOf(pid_t pid, const std::string& what) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::vector<std::string> out;
  for (std::string line; std::getline(maps, line);)
    if (line.find(what) != std::string::npos) out.push_back(line);
  return out;
}

}  // namespace molt::test::trust
