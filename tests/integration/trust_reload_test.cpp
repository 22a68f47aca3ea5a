// End-to-end: no failure path is an outage (issue 13): abandoned and failed reloads, large
// changes, binary upgrades to binaries that cannot take over.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/integration/trust_support.hpp"

using namespace molt::test;
using namespace molt::test::trust;
using nlohmann::json;

namespace {

// Whether process `pid` or one of its children holds a socket listening on TCP port `port`
// (matched by inode against /proc/net/tcp). Unlike a connect, another process that happens to
// bind the same port meanwhile (a test running beside this one) does not count.
bool treeListensOn(pid_t pid, std::uint16_t port) {
  std::set<std::string> listening;
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    in >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >>
        inode;
    if (state == "0A" && std::stoul(local.substr(local.find(':') + 1), nullptr, 16) == port)
      listening.insert("socket:[" + inode + "]");
  }
  std::vector<std::string> pids = {std::to_string(pid)};
  std::ifstream children("/proc/" + pids[0] + "/task/" + pids[0] + "/children");
  for (std::string child; children >> child;) pids.push_back(child);
  for (const std::string& p : pids) {
    std::error_code error;
    for (const auto& fd : std::filesystem::directory_iterator("/proc/" + p + "/fd", error)) {
      std::error_code gone;
      if (listening.count(std::filesystem::read_symlink(fd.path(), gone).string())) return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("a reload whose workers never become ready is abandoned whole: its listeners close",
          "[trust][integration]") {
  Origin origin;
  TempDir dir;
  // Every worker of generation 2 dies as soon as it starts, as those of a broken build would:
  // the slots wait in their respawn backoff when the reload times out, with no worker alive.
  // Before the fix that generation was never reaped and its new port stayed bound with nothing
  // accepting.
  Molt molt(httpConfig(dir, origin.httpPort()), {"MOLT_TEST_DIE_FROM_GENERATION=2"});
  std::uint16_t port = molt.port("fe"), extra = unusedPort();
  std::string text = httpConfig(dir, origin.httpPort());
  text.replace(text.find("\"workers\": 2"), 12, "\"workers\": 2, \"reload_timeout\": \"1s\"");
  text.replace(text.find("\"frontends\": ["), 14,
               "\"frontends\": [{\"name\": \"extra\", \"mode\": \"http\", \"bind\": [\"127.0.0.1:" +
                   std::to_string(extra) + "\"], \"default_backend\": \"be\"}, ");
  molt.rewriteConfig(text);
  size_t from = molt.process().lines().size();
  molt.process().signal(SIGUSR2);
  bool abandoned = molt.process().waitForLine("reload abandoned", 20s, from).has_value();
  REQUIRE_LINE(molt.process(), "generation 2: worker slot 0 .* died unexpectedly", 1s, from);
  REQUIRE(abandoned);
  REQUIRE_LINE(molt.process(), "generation 2 gone", 10s, from);
  REQUIRE(treeListensOn(molt.process().pid(), port));         // the check sees molt's sockets
  REQUIRE_FALSE(treeListensOn(molt.process().pid(), extra));  // molt listens there no more
  REQUIRE(httpGet(port, "/").find("200 OK") != std::string::npos);
  REQUIRE(molt.process().running());
}

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
