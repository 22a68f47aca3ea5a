// End-to-end: two molt instances share TLS resumption through a real redis-server (issue 18).
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"
#include "tests/support/tls_client.hpp"

using namespace molt::test;

namespace {

const std::string& certificateFile() {
  static TempDir dir;
  static std::string path = dir.path() + "/site.pem";
  static bool made = makeCertificate(path, "www.example.com");
  REQUIRE(made);
  return path;
}

// A redis-server of its own on a free loopback port, without persistence; stopped by pid.
class Redis {
 public:
  explicit Redis(std::uint16_t port) : port_(port) { start(); }
  void start() {
    child_ = std::make_unique<Child>(
        std::vector<std::string>{"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind",
                                 "127.0.0.1", "--save", "", "--appendonly", "no"});
    REQUIRE_LINE(*child_, "Ready to accept connections", 10s);
  }
  void stop() {
    child_->signal(SIGTERM);
    REQUIRE(child_->waitExit(10s));
    child_.reset();
  }
  std::uint16_t port() const { return port_; }

 private:
  std::uint16_t port_;
  std::unique_ptr<Child> child_;
};

std::string config(std::uint16_t echoPort, std::uint16_t redisPort, const std::string& dir,
                   bool tickets) {
  return R"({"global": {"workers": 1, "api_socket": ")" + dir + R"(/api.sock"},
    "tls": {"session_cache": "1MB", "tickets": )" +
         (tickets ? "true" : "false") + R"(},
    "fleet": {"redis": "127.0.0.1:)" +
         std::to_string(redisPort) + R"(", "prefix": "molt:test:", "session_ttl": "10m"},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": [{"address": "127.0.0.1:0", "tls": true}],
                   "certificates": [")" +
         certificateFile() + R"("], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(echoPort) + R"("}]}]})";
}

// An instance of the fleet, with its API socket in a directory of its own.
struct Instance {
  Instance(std::uint16_t echoPort, std::uint16_t redisPort, bool tickets)
      : molt(config(echoPort, redisPort, dir.path(), tickets)) {}
  std::string socket() const { return dir.path() + "/api.sock"; }
  // Null until the API answers (its socket opens once the first generation serves).
  nlohmann::json fleet() const {
    nlohmann::json r = askApi(socket(), R"({"cmd": "cache"})");
    return r.is_object() && r.contains("fleet") ? r["fleet"] : nlohmann::json();
  }
  std::uint16_t port() { return molt.port("fe"); }
  TempDir dir;
  Molt molt;
};

TlsSession handshake(std::uint16_t port, const TlsClientOptions& options, bool* resumed) {
  TlsClient client(port, options);
  INFO(client.error());
  REQUIRE(client.connected());
  REQUIRE(client.send("ping"));
  REQUIRE(client.receive(4) == "ping");
  *resumed = client.resumed();
  return client.session();
}

// A TLS 1.3 ticket issued by the instance on `port` (a full handshake).
TlsSession ticketFrom(std::uint16_t port) {
  TlsClientOptions options{"www.example.com", "TLSv1.3", true, nullptr};
  bool resumed = true;
  return handshake(port, options, &resumed);
}

// Whether the instance on `port` accepts `ticket`. TLS 1.3 clients use a ticket once: each check
// offers a ticket of its own.
bool resumesOn(std::uint16_t port, const TlsSession& ticket) {
  TlsClientOptions options{"www.example.com", "TLSv1.3", true, ticket.get()};
  bool resumed = false;
  handshake(port, options, &resumed);
  return resumed;
}

// Bounded wait for a fleet state the master reaches asynchronously.
bool waitFor(const std::function<bool()>& condition) {
  for (int i = 0; i < 100; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// redis-cli's answer to one command.
std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  REQUIRE(pipe);
  char buffer[512];
  for (std::size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  pclose(pipe);
  return out;
}

bool connected(const Instance& instance) {
  nlohmann::json f = instance.fleet();
  return f.is_object() && f["state"] == "connected" && f["ring"] == "fleet";
}

}  // namespace

TEST_CASE("a TLS session made on one instance resumes on another through redis",
          "[fleet][integration]") {
  Origin origin;
  Redis redis(unusedPort());
  Instance a(origin.echoPort(), redis.port(), false), b(origin.echoPort(), redis.port(), false);
  REQUIRE(waitFor([&] { return connected(a) && connected(b); }));
  for (std::string version : {"TLSv1.2", "TLSv1.3"}) {
    INFO(version << ", session ids / stateful tickets");
    TlsClientOptions options{"www.example.com", version, false, nullptr};
    bool resumed = true;
    TlsSession session = handshake(a.port(), options, &resumed);
    CHECK_FALSE(resumed);
    options.resume = session.get();
    // The session reaches Redis asynchronously after the handshake: a short bounded wait.
    CHECK(waitFor([&] {
      handshake(b.port(), options, &resumed);
      return resumed;
    }));
  }
  nlohmann::json stats = askApi(b.socket(), R"({"cmd": "cache"})");
  CHECK(stats["session_cache"]["entries"].get<int>() >= 2);  // answers from Redis, kept locally
  const nlohmann::json& workers = stats["fleet"]["workers"];
  CHECK(workers["hits"].get<int>() >= 2);
  CHECK(workers["lookups"].get<int>() >= workers["hits"].get<int>());
  CHECK(workers["refused"] == 0);
  CHECK(workers["connected"] == 1);
}

TEST_CASE("tickets from one instance are accepted by another, across a fleet rotation",
          "[fleet][integration]") {
  Origin origin;
  Redis redis(unusedPort());
  Instance a(origin.echoPort(), redis.port(), true), b(origin.echoPort(), redis.port(), true);
  REQUIRE(waitFor([&] { return connected(a) && connected(b); }));
  CHECK(resumesOn(b.port(), ticketFrom(a.port())));
  CHECK(resumesOn(a.port(), ticketFrom(b.port())));
  TlsSession beforeForA = ticketFrom(a.port()), beforeForB = ticketFrom(a.port());

  nlohmann::json r = askApi(a.socket(), R"({"cmd": "rotate-tickets"})");
  INFO(r.dump());
  REQUIRE(r["ok"] == true);
  REQUIRE(waitFor(
      [&] { return askApi(b.socket(), R"({"cmd": "cache"})")["ticket_keys"]["rotations"] == 1; }));
  // Issued before the rotation (sealed with what is now the previous key): accepted by both.
  CHECK(resumesOn(a.port(), beforeForA));
  CHECK(resumesOn(b.port(), beforeForB));
  // Issued after it, with the new current key, by either: accepted by the other.
  CHECK(resumesOn(a.port(), ticketFrom(b.port())));
  CHECK(resumesOn(b.port(), ticketFrom(a.port())));
}

TEST_CASE("with redis stopped both instances serve and resume locally, and share again after",
          "[fleet][integration]") {
  Origin origin;
  Redis redis(unusedPort());
  Instance a(origin.echoPort(), redis.port(), false), b(origin.echoPort(), redis.port(), false);
  REQUIRE(waitFor([&] { return connected(a) && connected(b); }));
  redis.stop();
  REQUIRE(waitFor([&] { return a.fleet().value("state", "") == "unavailable"; }));
  CHECK(a.fleet()["ring"] == "local");
  CHECK(waitFor([&] { return a.fleet()["workers"]["connected"] == 0; }));
  TlsClientOptions options{"www.example.com", "TLSv1.2", false, nullptr};
  bool resumed = true;
  TlsSession local = handshake(a.port(), options, &resumed);
  CHECK_FALSE(resumed);
  options.resume = local.get();
  handshake(a.port(), options, &resumed);
  CHECK(resumed);  // the local cache still works
  handshake(b.port(), options, &resumed);
  CHECK_FALSE(resumed);  // nothing shared, and no wait on a Redis that is gone

  redis.start();
  REQUIRE(waitFor([&] { return connected(a) && connected(b); }));
  // The workers' links come back on their own backoff: a fresh session each try.
  CHECK(waitFor([&] {
    options.resume = nullptr;
    TlsSession shared = handshake(a.port(), options, &resumed);
    options.resume = shared.get();
    handshake(b.port(), options, &resumed);
    return resumed;
  }));
}

TEST_CASE("what redis answers is checked: a forged session and a forged ring are refused",
          "[fleet][integration]") {
  Origin origin;
  Redis redis(unusedPort());
  Instance a(origin.echoPort(), redis.port(), false), b(origin.echoPort(), redis.port(), false);
  REQUIRE(waitFor([&] { return connected(a) && connected(b); }));
  std::string cli = "redis-cli -p " + std::to_string(redis.port()) + " ";
  TlsClientOptions options{"www.example.com", "TLSv1.2", false, nullptr};
  bool resumed = true;
  TlsSession session = handshake(a.port(), options, &resumed);
  unsigned int length = 0;
  const unsigned char* id = SSL_SESSION_get_id(session.get(), &length);
  std::string key = "molt:test:tls:session:";
  for (unsigned i = 0; i < length; ++i) key += fmt::format("{:02x}", id[i]);
  REQUIRE(waitFor([&] { return run(cli + "EXISTS " + key) == "1\n"; }));
  // B asks for this id and gets bytes that are no session: a full handshake, counted.
  run(cli + "SET " + key + " forged-bytes");
  options.resume = session.get();
  handshake(b.port(), options, &resumed);
  CHECK_FALSE(resumed);
  CHECK(b.fleet()["workers"]["refused"] == 1);

  // A ring that does not check out: logged, reported, and both keep the keys they had.
  auto before = askApi(a.socket(), R"({"cmd": "cache"})")["ticket_keys"];
  run(cli + "SET molt:test:tls:ticket-ring forged-ring");
  REQUIRE(waitFor([&] { return a.fleet().contains("ring_problem"); }));
  CHECK_THAT(a.fleet()["ring_problem"].get<std::string>(), Catch::Contains("11 bytes"));
  CHECK(a.fleet()["ring"] == "local");
  CHECK(askApi(a.socket(), R"({"cmd": "cache"})")["ticket_keys"] == before);
  REQUIRE_LINE(a.molt.process(), "tls:ticket-ring in Redis refused", 5s);
}

TEST_CASE("a reload and a binary upgrade keep the fleet ring and the redis configuration",
          "[fleet][integration][upgrade]") {
  Origin origin;
  Redis redis(unusedPort());
  Instance a(origin.echoPort(), redis.port(), true), b(origin.echoPort(), redis.port(), true);
  REQUIRE(waitFor([&] { return connected(a) && connected(b); }));
  auto cache = [&] { return askApi(a.socket(), R"({"cmd": "cache"})"); };
  const nlohmann::json keysBefore = cache()["ticket_keys"];
  const auto linkSince = a.fleet()["since"];
  TlsSession beforeReload = ticketFrom(a.port()), beforeUpgrade = ticketFrom(a.port());

  // A reload: the master keeps its redis link (same "since") and the fleet's ring.
  REQUIRE(askApi(a.socket(), R"({"cmd": "reload"})")["ok"] == true);
  std::uint16_t port2 = a.molt.port("fe", 2);
  CHECK(connected(a));
  CHECK(a.fleet()["since"] == linkSince);
  CHECK(cache()["ticket_keys"] == keysBefore);
  CHECK(resumesOn(port2, beforeReload));
  CHECK(resumesOn(b.port(), ticketFrom(port2)));
  CHECK(resumesOn(port2, ticketFrom(b.port())));

  // A binary upgrade (re-exec of the same file): the new master reads the fleet configuration
  // from the inventory, keeps the ring it had and joins the fleet's again.
  size_t from = a.molt.process().lines().size();
  REQUIRE(askApi(a.socket(), R"({"cmd": "upgrade"})")["ok"] == true);
  REQUIRE_LINE(a.molt.process(), "generation 3 serving", 20s, from);
  std::uint16_t port3 = a.molt.port("fe", 3);
  REQUIRE(waitFor([&] { return connected(a); }));
  CHECK(cache()["ticket_keys"] == keysBefore);
  CHECK(resumesOn(port3, beforeUpgrade));
  CHECK(resumesOn(b.port(), ticketFrom(port3)));
  CHECK(resumesOn(port3, ticketFrom(b.port())));
  // The new workers' session tier works too: a TLS 1.2 session from B resumes on A.
  TlsClientOptions twelve{"www.example.com", "TLSv1.2", false, nullptr};
  bool resumed = true;
  TlsSession fromB = handshake(b.port(), twelve, &resumed);
  twelve.resume = fromB.get();
  CHECK(waitFor([&] {
    handshake(port3, twelve, &resumed);
    return resumed;
  }));
}
