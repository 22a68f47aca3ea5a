#include "master/health_check.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "common/unique_fd.hpp"

using namespace molt;
using master::CheckTarget;
using master::HealthChecker;
using master::HealthEvent;

namespace {

// A loopback listener; with `status` > 0 a thread answers each connection with that HTTP status,
// with 0 it accepts and never answers (a hung server), and when closed nothing listens.
class TestServer {
 public:
  explicit TestServer(int status) : status_(status) {
    fd_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_.get(), 1024);
    getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~TestServer() { close(); }
  void close() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    fd_.reset();
  }
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  void serve() {
    std::vector<common::UniqueFd> held;
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      common::UniqueFd c(accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      ++accepted_;
      if (status_ == 0) {
        held.push_back(std::move(c));
        continue;
      }
      std::string answer =
          "HTTP/1.1 " + std::to_string(status_) + " X\r\nContent-Length: 0\r\n\r\n";
      send(c.get(), answer.data(), answer.size(), MSG_NOSIGNAL);
    }
  }
  int status_;
  common::UniqueFd fd_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
};

CheckTarget target(const std::string& name, std::uint16_t port, common::CheckType type,
                   unsigned rise = 2, unsigned fall = 2) {
  CheckTarget t;
  t.backend = "be";
  t.server = name;
  std::string error;
  t.address = *common::parseAddress("127.0.0.1:" + std::to_string(port),
                                    common::AddressUse::Connect, error);
  t.check.type = type;
  t.check.interval = std::chrono::milliseconds(20);
  t.check.timeout = std::chrono::milliseconds(200);
  t.check.rise = rise;
  t.check.fall = fall;
  return t;
}

// Runs `loop` until `done()` or `limit` passes.
template <class F>
bool runUntil(uv_loop_t* loop, F done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 5, 5);
  while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

struct Loop {
  uv_loop_t loop;
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
};

}  // namespace

TEST_CASE("a tcp check marks a refusing server down after fall failures and up after rise",
          "[master][health]") {
  Loop l;
  std::vector<std::string> events;
  {
    HealthChecker checker(&l.loop, [&](const HealthEvent& e) {
      events.push_back(e.target.server + (e.up ? " up: " : " down: ") + e.reason);
    });
    auto server = std::make_unique<TestServer>(200);
    std::uint16_t port = server->port();
    checker.setTargets({target("s1", port, common::CheckType::Tcp, 3, 2)});
    REQUIRE(runUntil(&l.loop, [&] { return server->accepted() >= 3; }));
    REQUIRE(checker.isUp("be", "s1"));
    REQUIRE(events.empty());
    server.reset();  // nothing listens on the port any more
    REQUIRE(runUntil(&l.loop, [&] { return !checker.isUp("be", "s1"); }));
    REQUIRE(events == std::vector<std::string>{"s1 down: connection refused"});
    checker.setTargets({});
  }
}

TEST_CASE("an http check compares the status with the expected range", "[master][health]") {
  Loop l;
  TestServer ok(204), failing(503);
  std::vector<std::string> events;
  HealthChecker checker(&l.loop, [&](const HealthEvent& e) {
    events.push_back(e.target.server + (e.up ? " up: " : " down: ") + e.reason);
  });
  checker.setTargets({target("ok", ok.port(), common::CheckType::Http),
                      target("failing", failing.port(), common::CheckType::Http)});
  REQUIRE(runUntil(&l.loop, [&] { return !checker.isUp("be", "failing"); }));
  REQUIRE(runUntil(&l.loop, [&] { return ok.accepted() >= 4; }));
  REQUIRE(checker.isUp("be", "ok"));
  REQUIRE(events == std::vector<std::string>{"failing down: status 503"});
  checker.setTargets({});
}

TEST_CASE("a check that gets no answer fails at its timeout", "[master][health]") {
  Loop l;
  TestServer hung(0);
  std::string reason;
  HealthChecker checker(&l.loop, [&](const HealthEvent& e) { reason = e.reason; });
  auto t = target("hung", hung.port(), common::CheckType::Http, 1, 1);
  t.check.timeout = std::chrono::milliseconds(50);
  checker.setTargets({t});
  REQUIRE(runUntil(&l.loop, [&] { return !checker.isUp("be", "hung"); }));
  REQUIRE(reason == "timed out after 50 ms");
  checker.setTargets({});
}

TEST_CASE("checks in flight never exceed the bound", "[master][health]") {
  Loop l;
  TestServer hung(0);
  HealthChecker checker(
      &l.loop, [](const HealthEvent&) {}, 16);
  std::vector<CheckTarget> targets;
  for (int i = 0; i < 200; ++i) {
    auto t = target("s" + std::to_string(i), hung.port(), common::CheckType::Http);
    t.check.timeout = std::chrono::milliseconds(100);
    targets.push_back(t);
  }
  checker.setTargets(targets);
  REQUIRE(runUntil(&l.loop, [&] { return hung.accepted() >= 200; }));
  REQUIRE(checker.peakInFlight() == 16);
  checker.setTargets({});
}

TEST_CASE("first checks are spread over the interval", "[master][health]") {
  Loop l;
  TestServer server(200);
  HealthChecker checker(&l.loop, [](const HealthEvent&) {});
  std::vector<CheckTarget> targets;
  for (int i = 0; i < 100; ++i) {
    auto t = target("s" + std::to_string(i), server.port(), common::CheckType::Tcp);
    t.check.interval = std::chrono::seconds(2);
    targets.push_back(t);
  }
  checker.setTargets(targets);
  runUntil(
      &l.loop, [] { return false; }, std::chrono::milliseconds(200));
  // Uniform over 2 s, about 10 of 100 land in the first 200 ms; all of them would be a herd.
  INFO("accepted " << server.accepted());
  REQUIRE(server.accepted() < 40);
  checker.setTargets({});
}

TEST_CASE("state is kept by name across a reload: a down server stays down until it rises",
          "[master][health]") {
  Loop l;
  std::uint16_t deadPort;
  {
    TestServer gone(200);
    deadPort = gone.port();
  }
  HealthChecker checker(&l.loop, [](const HealthEvent&) {});
  checker.setTargets({target("s1", deadPort, common::CheckType::Tcp, 2, 1)});
  REQUIRE(runUntil(&l.loop, [&] { return !checker.isUp("be", "s1"); }));
  // The reload brings the same server (same name) and a new one.
  checker.setTargets({target("s1", deadPort, common::CheckType::Tcp, 2, 1),
                      target("s2", deadPort, common::CheckType::Tcp, 2, 5)});
  REQUIRE_FALSE(checker.isUp("be", "s1"));
  REQUIRE(checker.isUp("be", "s2"));  // never seen before: starts up
  checker.setTargets({});
}
