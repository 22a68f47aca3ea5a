// End-to-end: sd_notify messages and socket activation, without systemd (issue: hot reload).
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"
#include "tests/support/notify_listener.hpp"

using namespace molt::test;

namespace {

std::string config(std::uint16_t serverPort, const std::string& bind = "127.0.0.1:0") {
  return R"({"global": {"workers": 2},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": [")" +
         bind + R"("], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(serverPort) + R"("}]}]})";
}

}  // namespace

TEST_CASE("sd_notify gets READY, RELOADING with MONOTONIC_USEC, READY and STOPPING in order",
          "[systemd][integration]") {
  Origin origin;
  TempDir dir;
  NotifyListener notify(dir);
  Molt molt(config(origin.echoPort()), {notify.env()});
  std::string ready = notify.next();
  INFO(ready);
  REQUIRE(ready.find("READY=1") != std::string::npos);
  REQUIRE(ready.find("MAINPID=" + std::to_string(molt.process().pid())) != std::string::npos);
  REQUIRE(ready.find("STATUS=generation 1 serving, 2 workers") != std::string::npos);

  molt.process().signal(SIGUSR2);
  std::string reloading = notify.next();
  INFO(reloading);
  REQUIRE(reloading.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  std::string reloaded = notify.next();
  INFO(reloaded);
  REQUIRE(reloaded.find("READY=1") != std::string::npos);
  REQUIRE(reloaded.find("STATUS=generation 2 serving") != std::string::npos);

  molt.rewriteConfig("{ not json");
  molt.process().signal(SIGHUP);
  REQUIRE(notify.next().rfind("RELOADING=1", 0) == 0);
  std::string failed = notify.next();
  INFO(failed);
  REQUIRE(failed.find("READY=1") != std::string::npos);
  REQUIRE(failed.find("STATUS=reload failed: ") != std::string::npos);

  molt.process().signal(SIGTERM);
  REQUIRE(notify.next().rfind("STOPPING=1", 0) == 0);
  REQUIRE(molt.process().waitExit(15s));
}

TEST_CASE("listeners handed over by socket activation are used instead of binding",
          "[systemd][integration]") {
  Origin origin;
  molt::common::UniqueFd listener(socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(listener.get(), 64) == 0);
  REQUIRE(getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  std::uint16_t port = ntohs(addr.sin_port);
  // Inherited at a high number, moved to fd 3 by the shell, as systemd would pass it.
  constexpr int kInherited = 60;
  REQUIRE(dup2(listener.get(), kInherited) == kInherited);
  TempDir dir;
  std::string path =
      dir.write("molt.json", config(origin.echoPort(), "127.0.0.1:" + std::to_string(port)));
  std::string script = "exec 3<&60 60<&-; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec " +
                       moltBinary() + " -f " + path;
  Child molt({"/bin/bash", "-c", script});
  close(kInherited);
  listener.reset();
  INFO(molt.output());
  REQUIRE_LINE(molt,
               "socket activation: fd 3 \\(web\\) listening on 127.0.0.1:" + std::to_string(port),
               10s);
  REQUIRE_LINE(molt, "generation 1 serving", 20s);
  auto fd = connectTo(port);
  REQUIRE(sendAll(fd.get(), "activated"));
  REQUIRE(recvExactly(fd.get(), 9) == "activated");
}
