// End-to-end: TLS termination and session resumption through the shared cache (issue: TLS).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "shm/session_cache.hpp"
#include "tests/integration/http_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"
#include "tests/support/tls_client.hpp"

using namespace molt::test;

namespace {

// Certificates for www.example.com, *.example.com and a default, made once per test process.
const std::string& certificateDir() {
  static TempDir dir;
  static bool made = [] {
    std::filesystem::create_directory(dir.path() + "/certs");
    return makeCertificate(dir.path() + "/certs/0-default.pem", "default.example.net") &&
           makeCertificate(dir.path() + "/certs/www.pem", "www.example.com") &&
           makeCertificate(dir.path() + "/certs/wildcard.pem", "*.example.com");
  }();
  REQUIRE(made);
  static std::string path = dir.path() + "/certs";
  return path;
}

std::string config(std::uint16_t echoPort, const std::string& tls = R"("session_cache": "8MB")",
                   const std::string& global = "") {
  return R"({"global": {"workers": 2)" + global + R"(},
    "tls": {)" +
         tls + R"(},
    "frontends": [{"name": "fe", "mode": "tcp", "bind": [{"address": "127.0.0.1:0", "tls": true}],
                   "certificates": [")" +
         certificateDir() + R"("], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
         std::to_string(echoPort) + R"("}]}]})";
}

// A full handshake, an echo round trip, and the session to resume.
TlsSession fullHandshake(std::uint16_t port, const TlsClientOptions& options) {
  TlsClient client(port, options);
  INFO(client.error());
  REQUIRE(client.connected());
  REQUIRE_FALSE(client.resumed());
  REQUIRE(client.send("ping"));
  REQUIRE(client.receive(4) == "ping");
  return client.session();
}

bool resumes(std::uint16_t port, TlsClientOptions options, SSL_SESSION* session) {
  options.resume = session;
  TlsClient client(port, options);
  bool echoed = client.send("pong") && client.receive(4) == "pong";
  return client.connected() && echoed && client.resumed();
}

// Five sessions made now, resumed after `between` runs: the count that resumed.
template <class F>
int resumedAfter(Molt& molt, const TlsClientOptions& options, F between, unsigned generation = 1) {
  std::uint16_t port = molt.port("fe", generation);
  std::vector<TlsSession> sessions;
  for (int i = 0; i < 5; ++i) sessions.push_back(fullHandshake(port, options));
  between();
  int resumed = 0;
  for (auto& s : sessions) resumed += resumes(molt.port("fe", generation), options, s.get());
  return resumed;
}

const TlsClientOptions kTls12NoTickets{"www.example.com", "TLSv1.2", false, nullptr};
const TlsClientOptions kTls13{"www.example.com", "TLSv1.3", true, nullptr};

}  // namespace

TEST_CASE("TLS is terminated and bytes reach the origin in tcp mode", "[tls][integration]") {
  Origin origin;
  Molt molt(config(origin.echoPort()));
  TlsClient client(molt.port("fe"), {"www.example.com"});
  INFO(client.error());
  REQUIRE(client.connected());
  REQUIRE(client.version() == "TLSv1.3");
  REQUIRE(client.alpn().empty());  // a tcp frontend does not claim to speak HTTP
  std::string payload(200000, 'z');
  REQUIRE(client.send(payload));
  REQUIRE(client.receive(payload.size()) == payload);
}

TEST_CASE("an http frontend over TLS negotiates http/1.1 and tells the server it was https",
          "[tls][integration][http]") {
  Origin origin;
  std::string text = R"({"global": {"workers": 1},
    "frontends": [{"name": "fe", "mode": "http", "bind": [{"address": "127.0.0.1:0", "tls": true}],
                   "certificates": [")" +
                     certificateDir() + R"("], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
                     std::to_string(origin.httpPort()) + R"("}]}]})";
  Molt molt(text);
  TlsClient client(molt.port("fe"), {"www.example.com"});
  INFO(client.error());
  REQUIRE(client.connected());
  REQUIRE(client.alpn() == "http/1.1");
  REQUIRE(
      client.send("GET /headers HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"));
  std::string response = client.receive(1 << 16);
  INFO(response);
  REQUIRE(response.rfind("HTTP/1.1 200", 0) == 0);
  REQUIRE(response.find("X-Forwarded-Proto: https") != std::string::npos);
}

TEST_CASE("a frontend's own access log format, with the TLS version and the generation",
          "[tls][integration][log]") {
  Origin origin;
  std::string text = R"({"global": {"workers": 1},
    "frontends": [{"name": "fe", "mode": "http", "bind": [{"address": "127.0.0.1:0", "tls": true}],
                   "certificates": [")" +
                     certificateDir() + R"("], "default_backend": "be",
                   "access_log": {"format": "json"}},
                  {"name": "plain", "mode": "http", "bind": ["127.0.0.1:0"],
                   "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:)" +
                     std::to_string(origin.httpPort()) + R"("}]}]})";
  Molt molt(text);
  TlsClient client(molt.port("fe"), {"www.example.com"});
  INFO(client.error());
  REQUIRE(client.connected());
  REQUIRE(
      client.send("GET /size/3 HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"));
  REQUIRE(client.receive(1 << 16).rfind("HTTP/1.1 200", 0) == 0);
  REQUIRE_LINE(
      molt.process(),
      R"re(^\{"time":"[^"]+","pid":\d+,"type":"access","frontend":"fe",.*"target":"/size/3",)re"
      R"re(.*"tls":"TLSv1\.3","resumed":false,"generation":1\}$)re",
      5s);
  REQUIRE(request(molt.port("plain"), "/size/4").bodyLength == 4);
  REQUIRE_LINE(
      molt.process(),
      R"re(worker gen 1 slot 0: access fe=plain be=be srv=o .*"GET /size/4 HTTP/1\.1" 200 )re"
      R"re(.*total=[\d.]+ms$)re",
      5s);
}

TEST_CASE("SNI picks the exact certificate, then a wildcard, else the default",
          "[tls][integration]") {
  Origin origin;
  Molt molt(config(origin.echoPort()));
  std::uint16_t port = molt.port("fe");
  REQUIRE(TlsClient(port, {"www.example.com"}).peerCommonName() == "www.example.com");
  REQUIRE(TlsClient(port, {"api.example.com"}).peerCommonName() == "*.example.com");
  REQUIRE(TlsClient(port, {"unknown.test"}).peerCommonName() == "default.example.net");
  REQUIRE(TlsClient(port, {""}).peerCommonName() == "default.example.net");
}

TEST_CASE("sessions resume on another worker of the same generation",
          "[tls][integration][resume]") {
  Origin origin;
  Molt molt(config(origin.echoPort()));
  std::uint16_t port = molt.port("fe");
  auto workers = molt.workerPids(1);
  REQUIRE(workers.size() == 2);
  for (const auto& options : {kTls12NoTickets, kTls13}) {
    // Only worker 0 accepts while worker 1 is stopped, and the other way round: the session
    // made by one is resumed by the other, through the shared zone or the shared ticket keys.
    kill(workers[1], SIGSTOP);
    std::vector<TlsSession> sessions;
    for (int i = 0; i < 5; ++i) sessions.push_back(fullHandshake(port, options));
    kill(workers[1], SIGCONT);
    kill(workers[0], SIGSTOP);
    int resumed = 0;
    for (auto& s : sessions) resumed += resumes(port, options, s.get());
    kill(workers[0], SIGCONT);
    INFO("version " << options.version << " tickets " << options.tickets);
    REQUIRE(resumed == 5);
  }
}

TEST_CASE("with tickets off, a client that asks for tickets gets a session id from the cache",
          "[tls][integration][resume][tickets]") {
  Origin origin;
  Molt molt(config(origin.echoPort(), R"("session_cache": "8MB", "tickets": false)"));
  std::uint16_t port = molt.port("fe");
  TlsClientOptions askingForTickets{"www.example.com", "TLSv1.2", /*tickets=*/true};
  for (int i = 0; i < 3; ++i) {
    TlsSession session = fullHandshake(port, askingForTickets);
    REQUIRE(session);
    REQUIRE_FALSE(SSL_SESSION_has_ticket(session.get()));     // none was sent
    REQUIRE(resumes(port, askingForTickets, session.get()));  // by its id, through the zone
  }
}

TEST_CASE("sessions made before a reload resume after it", "[tls][integration][resume]") {
  Origin origin;
  Molt molt(config(origin.echoPort()));
  for (const auto& options : {kTls12NoTickets, kTls13}) {
    static unsigned next = 2;
    unsigned id = next++;
    int resumed = resumedAfter(molt, options, [&] {
      size_t from = molt.process().lines().size();
      molt.process().signal(SIGUSR2);
      REQUIRE_LINE(molt.process(), "generation " + std::to_string(id) + " serving", 20s, from);
      for (int slot = 0; slot < 2; ++slot)
        REQUIRE_LINE(
            molt.process(),
            "worker gen " + std::to_string(id - 1) + " slot " + std::to_string(slot) + ": draining",
            5s, from);
    });
    INFO("version " << options.version);
    REQUIRE(resumed == 5);
  }
}

TEST_CASE("sessions made before a binary upgrade resume after it",
          "[tls][integration][resume][upgrade]") {
  Origin origin;
  CopiedMolt molt(config(origin.echoPort()));
  std::uint16_t port = molt.port("fe");
  for (const auto& options : {kTls12NoTickets, kTls13}) {
    static unsigned next = 2;
    std::vector<TlsSession> sessions;
    for (int i = 0; i < 5; ++i) sessions.push_back(fullHandshake(port, options));
    molt.upgradeTo(next++);
    int resumed = 0;
    for (auto& s : sessions) resumed += resumes(port, options, s.get());
    INFO("version " << options.version << "\n" << molt.master->output());
    REQUIRE(resumed == 5);
  }
}

TEST_CASE("openssl s_client resumes with -sess_out / -sess_in, by session id and by ticket",
          "[tls][integration][resume]") {
  Origin origin;
  Molt molt(config(origin.echoPort()));
  std::string port = std::to_string(molt.port("fe"));
  TempDir dir;
  for (std::string tickets : {"-no_ticket", ""}) {
    std::string session = dir.path() + "/session" + tickets + ".pem";
    std::string base = "openssl s_client -connect 127.0.0.1:" + port +
                       " -servername www.example.com -tls1_2 " + tickets;
    Child first({"/bin/sh", "-c", base + " -sess_out " + session + " </dev/null"});
    REQUIRE(first.waitExit(10s));
    REQUIRE_LINE(first, "^New, TLSv1.2", 1s);
    Child again({"/bin/sh", "-c", base + " -sess_in " + session + " </dev/null"});
    REQUIRE(again.waitExit(10s));
    INFO("s_client " << tickets);
    REQUIRE_LINE(again, "^Reused, TLSv1.2", 1s);
  }
}

TEST_CASE("a worker killed holding a cache shard lock costs that shard only",
          "[tls][integration][robustness]") {
  Origin origin;
  Molt molt(config(origin.echoPort()));
  std::uint16_t port = molt.port("fe");
  // Attach to the master's session cache zone through its descriptor, as a worker would.
  std::string fdDir = "/proc/" + std::to_string(molt.process().pid()) + "/fd";
  std::string zonePath;
  for (const auto& entry : std::filesystem::directory_iterator(fdDir))
    if (std::filesystem::read_symlink(entry.path()).string().find("memfd:molt-session-cache") !=
        std::string::npos)
      zonePath = entry.path();
  REQUIRE_FALSE(zonePath.empty());
  std::string error;
  auto cache = molt::shm::SessionCache::attach(
      molt::common::UniqueFd(open(zonePath.c_str(), O_RDWR | O_CLOEXEC)), 0, error);
  INFO(error);
  REQUIRE(cache);
  // A child takes every shard's lock and dies holding them.
  pid_t child = fork();
  if (child == 0) {
    for (std::uint32_t i = 0; i < cache->shardCount(); ++i)
      (void)cache->shardMutex(i).lock(std::chrono::milliseconds(1000));
    raise(SIGKILL);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  // Workers keep serving, recover the shards and resume again.
  int resumed = 0;
  for (int i = 0; i < 5; ++i) {
    auto session = fullHandshake(port, kTls12NoTickets);
    resumed += resumes(port, kTls12NoTickets, session.get());
  }
  REQUIRE(resumed == 5);
  REQUIRE(cache->stats().lockRecoveries >= 1);
}

TEST_CASE("workers map the session cache zone under its memfd name", "[tls][integration]") {
  Origin origin;
  Molt molt(config(origin.echoPort()));
  molt.port("fe");
  for (pid_t pid : molt.workerPids(1)) {
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    std::string all((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
    REQUIRE(all.find("/memfd:molt-session-cache") != std::string::npos);
    REQUIRE(all.find("/memfd:molt-ticket-keys") != std::string::npos);
  }
}
