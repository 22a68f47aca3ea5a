// End-to-end: a worker is not trusted (issue 13). The test plays a compromised worker by taking
// a copy of a real worker's control socket (pidfd_getfd) and sending the master what no worker
// sends; the master must stay up, keep the other workers serving, and replace the culprit.
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

using namespace molt::test;
using nlohmann::json;

namespace {

std::string httpConfig(const TempDir& dir, std::uint16_t serverPort) {
  return R"({"global": {"workers": 2, "api_socket": ")" + dir.path() + R"(/api.sock"},
    "frontends": [{"name": "fe", "mode": "http", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(serverPort) + R"("}]}]})";
}

// The worker's end of its control socket (fd 3 in every worker), duplicated into this process.
molt::common::UniqueFd stealControlSocket(pid_t worker) {
  molt::common::UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, worker, 0)));
  REQUIRE(pidfd);
  molt::common::UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), 3, 0)));
  INFO("pidfd_getfd: " << std::strerror(errno));
  REQUIRE(fd);
  return fd;
}

// The pid the slot's latest worker of generation 1 has, from the master's log.
pid_t slotPid(Molt& molt, unsigned slot) {
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
void awaitReady(const std::string& socket, pid_t pid) {
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

}  // namespace

TEST_CASE("a worker that sends the master garbage is replaced; the master and the others serve on",
          "[trust][integration]") {
  Origin origin;
  TempDir dir;
  Molt molt(httpConfig(dir, origin.httpPort()));
  std::uint16_t port = molt.port("fe");
  std::string socket = dir.path() + "/api.sock";
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  // Each of these, sent by a worker, used to stop or was ignored by the master: the first one
  // threw nlohmann::type_error out of the master's loop (the whole instance went down).
  std::vector<Hostile> cases = {
      {"a mistyped field", R"({"type":"stats","connections":"x"})"},
      {"not JSON", "\x01\x02 not json"},
      {"an oversized datagram", std::string(70 * 1024, 'x')},
      {"a descriptor attached", R"({"type":"stats","connections":1})", true},
      {"a master's message", R"({"type":"drain","hard_stop_in_ms":0})"},
      {"a ready with another pid", R"({"type":"ready","pid":1,"protocol":2})"},
      {"a negative count", R"({"type":"stats","connections":-5})"},
  };
  pid_t bystander = slotPid(molt, 1);
  for (const auto& c : cases) {
    INFO(c.what);
    pid_t victim = slotPid(molt, 0);
    awaitReady(socket, victim);
    size_t from = molt.process().lines().size();
    {
      auto fd = stealControlSocket(victim);
      msghdr msg{};
      iovec iov{const_cast<char*>(c.datagram.data()), c.datagram.size()};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
      int passed = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (c.withFd) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cmsg), &passed, sizeof(int));
      }
      REQUIRE(sendmsg(fd.get(), &msg, 0) == static_cast<ssize_t>(c.datagram.size()));
      close(passed);
    }
    REQUIRE_LINE(molt.process(),
                 "worker slot 0 pid " + std::to_string(victim) + " sent .*; replacing it", 10s,
                 from);
    auto started =
        molt.process().waitForLine("generation 1: worker slot 0 started, pid (\\d+)", 20s, from);
    if (!started) FAIL("no respawn\n--- output ---\n" << molt.process().output());
    REQUIRE(std::stoi((*started)[1]) != victim);
    REQUIRE(molt.process().running());
    REQUIRE(processAlive(bystander));  // the other worker was never touched
    REQUIRE(httpGet(port, "/").find("200 OK") != std::string::npos);
  }
  json proc = askApi(socket, R"({"cmd": "proc"})");
  INFO(proc.dump());
  REQUIRE(proc["ok"] == true);
  REQUIRE(proc["generations"][0]["workers"].size() == 2);
}

namespace {

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

uid_t uidOf(pid_t pid) {
  struct stat st {};
  std::string path = "/proc/" + std::to_string(pid);
  return stat(path.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

}  // namespace

TEST_CASE("a worker whose global.user no longer resolves is not spawned, never run as root",
          "[trust][integration]") {
  ScratchUser user;
  Origin origin;
  TempDir dir;
  NotifyListener notify(dir);
  std::string text = httpConfig(dir, origin.httpPort());
  text.replace(text.find("\"workers\": 2"), 12, "\"workers\": 2, \"user\": \"" + user.name + "\"");
  Molt molt(text, {notify.env()});
  std::string socket = dir.path() + "/api.sock";
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  pid_t victim = slotPid(molt, 0), bystander = slotPid(molt, 1);
  REQUIRE(uidOf(victim) != 0);
  user.remove();
  size_t from = molt.process().lines().size();
  kill(victim, SIGKILL);
  // Before the fix the slot was respawned as the master's own user (root) without a word.
  REQUIRE_LINE(molt.process(),
               "worker slot 0 not spawned: global.user '" + user.name + "' does not resolve", 10s,
               from);
  REQUIRE_LINE(molt.process(), "worker slot 0 not spawned", 10s, from + 3);
  // Reported where an operator looks: proc, and sd_notify STATUS once it keeps failing.
  json proc = askApi(socket, R"({"cmd": "proc"})");
  INFO(proc.dump());
  pid_t zygote = proc["zygote"]["pid"].get<pid_t>();  // root; it drops privileges per worker
  for (pid_t child : childrenOf(molt.process().pid()))
    if (child != zygote) REQUIRE(uidOf(child) != 0);
  REQUIRE(proc["generations"][0]["failing"][0]["slot"] == 0);
  REQUIRE(proc["generations"][0]["failing"][0]["last"].get<std::string>().find(
              "does not resolve") != std::string::npos);
  std::string status = notify.nextContaining("failing", 30s);
  INFO(status);
  REQUIRE(status.find("slot 0 failing") != std::string::npos);
  // The master and the other worker serve on.
  REQUIRE(httpGet(molt.port("fe"), "/").find("200 OK") != std::string::npos);
  REQUIRE(processAlive(bystander));
}

TEST_CASE("a reload whose workers never become ready is abandoned whole: its listeners close",
          "[trust][integration]") {
  Origin origin;
  TempDir dir;
  Molt molt(httpConfig(dir, origin.httpPort()));
  std::uint16_t port = molt.port("fe"), extra = unusedPort();
  std::string text = httpConfig(dir, origin.httpPort());
  text.replace(text.find("\"workers\": 2"), 12, "\"workers\": 2, \"reload_timeout\": \"1s\"");
  text.replace(text.find("\"frontends\": ["), 14,
               "\"frontends\": [{\"name\": \"extra\", \"mode\": \"http\", \"bind\": [\"127.0.0.1:" +
                   std::to_string(extra) + "\"], \"default_backend\": \"be\"}, ");
  molt.rewriteConfig(text);
  size_t from = molt.process().lines().size();
  molt.process().signal(SIGUSR2);
  // Every worker of generation 2 dies at once, as a broken build would: the slots wait in their
  // respawn backoff when the reload times out, with no worker alive. Before the fix that
  // generation was never reaped and its new port stayed bound with nothing accepting.
  std::set<pid_t> killed;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  bool abandoned = false;
  while (!abandoned && std::chrono::steady_clock::now() < deadline) {
    auto lines = molt.process().lines();
    for (size_t i = from; i < lines.size(); ++i) {
      auto at = lines[i].find("generation 2: worker slot ");
      auto pidAt = lines[i].find("started, pid ");
      if (at != std::string::npos && pidAt != std::string::npos) {
        pid_t pid = std::stoi(lines[i].substr(pidAt + 13));
        if (killed.insert(pid).second) kill(pid, SIGKILL);
      }
      abandoned = abandoned || lines[i].find("reload abandoned") != std::string::npos;
    }
    usleep(1000);
  }
  REQUIRE(abandoned);
  REQUIRE_LINE(molt.process(), "generation 2 gone", 10s, from);
  REQUIRE_FALSE(connectTo(extra, 1s));  // nothing listens there any more
  REQUIRE(httpGet(port, "/").find("200 OK") != std::string::npos);
  REQUIRE(molt.process().running());
}

namespace {

std::string tlsConfig(const TempDir& dir, std::uint16_t serverPort, const std::string& cacheSize,
                      const std::string& extraFrontend = "") {
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

}  // namespace

TEST_CASE("a failed reload leaves the session cache, its size and its sessions as they were",
          "[trust][integration][tls]") {
  Origin origin;
  TempDir dir;
  REQUIRE(makeCertificate(dir.path() + "/site.pem", "site.example.com"));
  Molt molt(tlsConfig(dir, origin.httpPort(), "1MB"));
  std::string socket = dir.path() + "/api.sock";
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  std::uint16_t port = molt.port("tls");
  TlsSession session;
  {
    TlsClient first(port, {"site.example.com", "TLSv1.2", false});
    REQUIRE(first.connected());
    session = first.session();
  }
  json before = askApi(socket, R"({"cmd": "cache"})");
  REQUIRE(before["session_cache"]["size"] == 1 << 20);
  REQUIRE(before["session_cache"]["entries"] == 1);
  // A new cache size, and a bind that fails: the port is held by this test.
  std::uint16_t held = 0;
  molt::common::UniqueFd holder = listenOnLoopback(held);
  REQUIRE(holder);
  molt.rewriteConfig(tlsConfig(dir, origin.httpPort(), "2MB",
                               R"({"name": "extra", "mode": "http", "bind": ["127.0.0.1:)" +
                                   std::to_string(held) + R"("], "default_backend": "be"}, )"));
  json reload = askApi(socket, R"({"cmd": "reload"})");
  INFO(reload.dump());
  REQUIRE(reload["ok"] == false);
  // Before the fix the 2 MB zone had already replaced the instance's cache: `cache` showed it
  // empty, and the next generation would have started on it.
  json after = askApi(socket, R"({"cmd": "cache"})");
  INFO(after.dump());
  REQUIRE(after["session_cache"]["size"] == 1 << 20);
  REQUIRE(after["session_cache"]["entries"] == 1);
  TlsClient again(port, {"site.example.com", "TLSv1.2", false, session.get()});
  REQUIRE(again.connected());
  REQUIRE(again.resumed());
}

TEST_CASE("a cert.set larger than a control datagram reaches every worker",
          "[trust][integration][tls]") {
  Origin origin;
  TempDir dir;
  REQUIRE(makeCertificate(dir.path() + "/site.pem", "site.example.com"));
  REQUIRE(makeCertificate(dir.path() + "/big.pem", "big.example.com"));
  Molt molt(tlsConfig(dir, origin.httpPort(), "1MB"));
  std::string socket = dir.path() + "/api.sock";
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  std::ifstream in(dir.path() + "/big.pem");
  std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Text before the PEM blocks is ignored by OpenSSL; it makes the change 100 KiB.
  std::string padding;
  while (padding.size() < 100 * 1024) padding += "# padding to make a large change message\n";
  json answer = askApiJson(
      socket, {{"cmd", "cert.set"}, {"frontend", "tls"}, {"name", "big"}, {"pem", padding + pem}});
  INFO(answer.dump());
  REQUIRE(answer["ok"] == true);
  REQUIRE_FALSE(answer.contains("warning"));  // every worker confirmed
  // Before the fix the message could not be sent: journalled and answered ok, never applied.
  for (int i = 0; i < 8; ++i) {
    TlsClient client(molt.port("tls"), {"big.example.com"});
    REQUIRE(client.connected());
    REQUIRE(client.peerCommonName() == "big.example.com");
  }
}

namespace {

// Asks the API at `socket` as uid/gid 65534 (nobody), in a child process; returns the answer.
json askAsNobody(const std::string& socket, const json& request) {
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

}  // namespace

TEST_CASE("the API admits the workers' user only when listed, and reads files as its client",
          "[trust][integration][api]") {
  Origin origin;
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  REQUIRE(makeCertificate(dir.path() + "/site.pem", "site.example.com"));
  REQUIRE(makeCertificate(dir.path() + "/open.pem", "open.example.com"));
  REQUIRE(makeCertificate(dir.path() + "/secret.pem", "secret.example.com"));
  chmod((dir.path() + "/open.pem").c_str(), 0644);
  chmod((dir.path() + "/secret.pem").c_str(), 0600);  // root's alone
  std::string base = tlsConfig(dir, origin.httpPort(), "1MB");
  std::string withUser = base;
  withUser.replace(withUser.find("\"workers\": 2"), 12, "\"workers\": 2, \"user\": \"nobody\"");
  Molt molt(withUser);
  std::string socket = dir.path() + "/api.sock";
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  chmod(socket.c_str(), 0666);  // the uid check must hold even with the file mode open
  // Before the fix the workers' user (here nobody) was admitted by default: a compromised worker
  // could cert.set any path and have the root master read it.
  json refused = askAsNobody(socket, {{"cmd", "proc"}});
  INFO(refused.dump());
  REQUIRE(refused["ok"] == false);
  REQUIRE(refused["error"].get<std::string>().find("permission denied for uid 65534") == 0);

  std::string listed = withUser;
  listed.replace(listed.find("\"user\": \"nobody\""), 16,
                 "\"user\": \"nobody\", \"api_users\": [\"nobody\"]");
  molt.rewriteConfig(listed);
  REQUIRE(askApi(socket, R"({"cmd": "reload"})")["ok"] == true);
  chmod(socket.c_str(), 0666);
  json admitted = askAsNobody(socket, {{"cmd", "proc"}});
  REQUIRE(admitted["ok"] == true);
  // A listed user still reads only what it could read itself.
  json secret = askAsNobody(
      socket, {{"cmd", "cert.set"}, {"frontend", "tls"}, {"path", dir.path() + "/secret.pem"}});
  INFO(secret.dump());
  REQUIRE(secret["ok"] == false);
  REQUIRE(secret["error"].get<std::string>().find("Permission denied") != std::string::npos);
  json open = askAsNobody(
      socket, {{"cmd", "cert.set"}, {"frontend", "tls"}, {"path", dir.path() + "/open.pem"}});
  INFO(open.dump());
  REQUIRE(open["ok"] == true);
  // Root reads what root may.
  REQUIRE(askApiJson(socket, {{"cmd", "cert.set"},
                              {"frontend", "tls"},
                              {"path", dir.path() + "/secret.pem"}})["ok"] == true);
}

namespace {

std::string upgradeConfig(const std::string& socket, std::uint16_t serverPort) {
  return R"({"global": {"workers": 2, "api_socket": ")" + socket + R"("},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": ["127.0.0.1:0"], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(serverPort) + R"("}]}]})";
}

// A fresh connection echoes.
bool httpOrEcho(std::uint16_t port) {
  auto fd = connectTo(port);
  return fd && sendAll(fd.get(), "x") && recvExactly(fd.get(), 1) == "x";
}

// An echo round trip on a held connection.
bool echoes(int fd, const std::string& text) {
  return sendAll(fd, text) && recvExactly(fd, text.size()) == text;
}

}  // namespace

TEST_CASE("an upgrade to a binary that cannot take over is refused; the old master serves on",
          "[trust][integration][upgrade]") {
  Origin origin;
  TempDir sockets;
  std::string socket = sockets.path() + "/api.sock";
  CopiedMolt molt(upgradeConfig(socket, origin.echoPort()));
  Child& master = *molt.master;
  REQUIRE_LINE(master, "api: listening on", 10s);
  auto held = connectTo(molt.port("fe"));
  REQUIRE(echoes(held.get(), "before"));
  // Not molt at all, as a broken package would leave it. Before the fix the master exec'd it and
  // the instance was gone.
  {
    std::ofstream broken(molt.binary + ".new");
    broken << "#!/bin/sh\necho 'this is not the binary you want' >&2\nexit 1\n";
  }
  chmod((molt.binary + ".new").c_str(), 0755);
  std::filesystem::rename(molt.binary + ".new", molt.binary);
  json refused = askApi(socket, R"({"cmd": "upgrade"})");
  INFO(refused.dump());
  REQUIRE(refused["ok"] == false);
  REQUIRE(refused["error"].get<std::string>().find("binary upgrade refused:") == 0);
  REQUIRE(refused["error"].get<std::string>().find("this is not the binary you want") !=
          std::string::npos);
  REQUIRE(master.running());
  REQUIRE(echoes(held.get(), "after"));
  // A signal reloads the config with the running binary (the refused file is not retried).
  size_t from = master.lines().size();
  master.signal(SIGUSR2);
  REQUIRE_LINE(master, "generation 2 serving", 20s, from);
  // A good binary then upgrades, and the API answers with the real result: the new image's
  // reload (before the fix, "ok" came before the exec, whatever happened after).
  CopiedMolt::install(molt.binary + ".new");
  std::filesystem::rename(molt.binary + ".new", molt.binary);
  json upgraded = askApi(socket, R"({"cmd": "upgrade"})");
  INFO(upgraded.dump());
  REQUIRE(upgraded["ok"] == true);
  REQUIRE(upgraded["generation"] == 3);
  REQUIRE(echoes(held.get(), "still"));
}

TEST_CASE("a new binary that fails while taking over hands the instance back to the old one",
          "[trust][integration][upgrade]") {
  Origin origin;
  TempDir sockets;
  std::string socket = sockets.path() + "/api.sock";
  // The fault hook makes the new image abort after it passed its check, mid-takeover.
  CopiedMolt molt(upgradeConfig(socket, origin.echoPort()),
                  {"MOLT_UPGRADE_FAULT=crash-in-restore"});
  Child& master = *molt.master;
  REQUIRE_LINE(master, "api: listening on", 10s);
  auto held = connectTo(molt.port("fe"));
  REQUIRE(echoes(held.get(), "before"));
  json answer = askApi(socket, R"({"cmd": "upgrade"})");
  INFO(answer.dump());
  INFO(master.output());
  REQUIRE(answer["ok"] == false);
  REQUIRE(answer["error"].get<std::string>().find(
              "binary upgrade failed: the new binary crashed while taking over (signal 06)") == 0);
  REQUIRE(master.running());
  // The workers were adopted again by the image that took over: the one holding the connection
  // still carries it.
  REQUIRE_LINE(master, "upgrade: adopted generation 1 \\(serving\\) with 2 workers", 5s);
  REQUIRE(echoes(held.get(), "after"));
  REQUIRE(httpOrEcho(molt.port("fe")));
  held.reset();
  master.signal(SIGTERM);
  auto status = master.waitExit(15s);
  REQUIRE(status);
  REQUIRE(WEXITSTATUS(*status) == 0);
}

namespace {

// The lines of /proc/PID/maps naming `what` ("molt-session-cache").
std::vector<std::string> mappingsOf(pid_t pid, const std::string& what) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::vector<std::string> out;
  for (std::string line; std::getline(maps, line);)
    if (line.find(what) != std::string::npos) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE(
    "a worker maps what it only reads read-only; its scribbles on the cache stop at the cache",
    "[trust][integration][tls]") {
  Origin origin;
  TempDir dir;
  REQUIRE(makeCertificate(dir.path() + "/site.pem", "site.example.com"));
  Molt molt(tlsConfig(dir, origin.httpPort(), "4MB"));
  std::string socket = dir.path() + "/api.sock";
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  std::uint16_t port = molt.port("tls");
  for (int i = 0; i < 4; ++i)
    REQUIRE(TlsClient(port, {"site.example.com", "TLSv1.2", false}).connected());
  pid_t worker = slotPid(molt, 0);
  // What workers only read, they cannot write: shared, read-only mappings.
  for (const char* zone : {"molt-server-state", "molt-ticket-keys"}) {
    auto lines = mappingsOf(worker, zone);
    INFO(zone);
    REQUIRE(lines.size() == 1);
    REQUIRE(lines[0].find(" r--s ") != std::string::npos);
  }
  // The session cache is theirs to write: play a compromised worker writing garbage over its
  // header and shard table (as root, through the worker's own mapping).
  auto cache = mappingsOf(worker, "molt-session-cache");
  REQUIRE(cache.size() == 1);
  REQUIRE(cache[0].find(" rw-s ") != std::string::npos);
  std::string range = cache[0].substr(0, cache[0].find(' '));
  molt::common::UniqueFd fd(
      open(("/proc/" + std::to_string(worker) + "/map_files/" + range).c_str(), O_RDWR));
  REQUIRE(fd);
  std::string garbage(8192, '\xff');
  REQUIRE(pwrite(fd.get(), garbage.data(), garbage.size(), 64) ==
          static_cast<ssize_t>(garbage.size()));
  // The master reads the cache's statistics from its own copy of the layout: before the fix it
  // looped to the header's shard count, far past the mapping.
  json stats = askApi(socket, R"({"cmd": "cache"})");
  INFO(stats.dump());
  REQUIRE(stats["ok"] == true);
  REQUIRE(stats["session_cache"]["shards"].get<unsigned>() <= 64);
  REQUIRE(molt.process().running());
  // Workers go on: handshakes complete (resuming or not), the master answers.
  for (int i = 0; i < 4; ++i)
    REQUIRE(TlsClient(port, {"site.example.com", "TLSv1.2", false}).connected());
  REQUIRE(askApi(socket, R"({"cmd": "proc"})")["ok"] == true);
}
