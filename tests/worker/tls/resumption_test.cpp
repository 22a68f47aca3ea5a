// Resumption across SSL_CTX instances: each context stands for another worker or generation, and
// only the zones connect them.
#include <catch2/catch.hpp>

#include "shm/session_cache.hpp"
#include "shm/ticket_keys.hpp"
#include "tests/worker/tls/test_support.hpp"
#include "worker/tls/context.hpp"

using molt::shm::SessionCache;
using molt::shm::TicketKeys;
using molt::worker::TlsContext;
using molt::worker::TlsEngine;
using molt::worker::TlsOptions;
using molt::worker::test::establish;
using molt::worker::test::TestClient;
using molt::worker::test::TestFiles;
using molt::worker::test::TestPki;
using molt::worker::test::testPool;

namespace {

struct Zones {
  std::unique_ptr<SessionCache> cache;
  std::unique_ptr<TicketKeys> keys;
  Zones() {
    std::string error;
    cache = SessionCache::create(1 << 20, error);
    keys = TicketKeys::create(error);
    REQUIRE(cache);
    REQUIRE(keys);
  }
};

struct Site {
  TestPki pki;
  TestFiles files{{{"/site.pem", pki.issue({"site.test"}, "site").combined()}}};

  // A fresh context: what another worker (or generation) builds from the same bundle.
  std::shared_ptr<TlsContext> worker(const TlsOptions& options) {
    std::string error;
    auto context = TlsContext::load({"/site.pem"}, files.source(), options, error);
    INFO(error);
    REQUIRE(context);
    return context;
  }
};

Site& site() {
  static Site instance;
  return instance;
}

TlsOptions options(Zones& zones, bool tickets, std::string frontend = "www") {
  TlsOptions o;
  o.tickets = tickets;
  o.sessionCache = zones.cache.get();
  o.ticketKeys = zones.keys.get();
  o.sessionIdContext = "molt frontend " + frontend;
  return o;
}

// Connects `client` to `context`, offering `session`; returns whether the server resumed it.
bool connect(TestClient& client, const std::shared_ptr<TlsContext>& context,
             SSL_SESSION* session = nullptr) {
  auto engine = client.connect("site.test", session);
  TlsEngine server(testPool(), context);
  REQUIRE(establish(*engine, server));
  CHECK(server.resumed() == (SSL_session_reused(engine->ssl()) == 1));
  return server.resumed();
}

std::string ticketOf(const SSL_SESSION* session) {
  const unsigned char* data = nullptr;
  std::size_t size = 0;
  SSL_SESSION_get0_ticket(session, &data, &size);
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace

TEST_CASE("TLS 1.2 with tickets off resumes a session id from another worker via the cache",
          "[tls][resumption]") {
  Zones zones;
  auto first = site().worker(options(zones, false));
  auto second = site().worker(options(zones, false));
  TestClient client(site().pki, TLS1_2_VERSION);
  REQUIRE_FALSE(connect(client, first));
  molt::tls::SslSessionPtr session = client.takeSession();
  REQUIRE(session);
  CHECK_FALSE(SSL_SESSION_has_ticket(session.get()));
  CHECK(zones.cache->stats().stores == 1);
  for (int i = 0; i < 5; ++i) CHECK(connect(client, second, session.get()));
  CHECK(zones.cache->stats().hits == 5);
}

TEST_CASE("without the shared cache a session id does not resume on another worker",
          "[tls][resumption]") {
  Zones zones;
  TlsOptions alone = options(zones, false);
  alone.sessionCache = nullptr;
  auto first = site().worker(alone);
  auto second = site().worker(alone);
  TestClient client(site().pki, TLS1_2_VERSION);
  connect(client, first);
  auto session = client.takeSession();
  CHECK_FALSE(connect(client, second, session.get()));
}

TEST_CASE("TLS 1.3 resumes with a ticket sealed by another worker's shared keys",
          "[tls][resumption]") {
  Zones zones;
  auto first = site().worker(options(zones, true));
  auto second = site().worker(options(zones, true));
  TestClient client(site().pki);
  REQUIRE_FALSE(connect(client, first));
  auto session = client.takeSession();
  REQUIRE(session);
  CHECK(SSL_SESSION_has_ticket(session.get()));
  CHECK(connect(client, second, session.get()));
  CHECK(zones.cache->stats().stores == 0);  // stateless tickets leave the cache alone

  TlsOptions ownKeys = options(zones, true);
  ownKeys.ticketKeys = nullptr;
  auto unshared = site().worker(ownKeys);
  CHECK_FALSE(connect(client, unshared, session.get()));
}

// Regression: OpenSSL issues no new ticket after a TLS 1.3 resumption unless the ticket callback
// asks for renewal, and clients spend each ticket once: every other connection was a full one.
TEST_CASE("a TLS 1.3 client reconnecting with its newest ticket resumes every time",
          "[tls][resumption]") {
  Zones zones;
  auto first = site().worker(options(zones, true));
  auto second = site().worker(options(zones, true));
  TestClient client(site().pki);
  connect(client, first);
  int resumed = 0;
  for (int i = 0; i < 10; ++i) {
    auto session = client.takeSession();
    REQUIRE(session);
    resumed += connect(client, i % 2 ? first : second, session.get());
  }
  CHECK(resumed == 10);
}

TEST_CASE("TLS 1.3 with tickets off resumes stateful tickets through the cache",
          "[tls][resumption]") {
  Zones zones;
  auto first = site().worker(options(zones, false));
  auto second = site().worker(options(zones, false));
  TestClient client(site().pki);
  REQUIRE_FALSE(connect(client, first));
  auto session = client.takeSession();
  REQUIRE(session);
  CHECK(zones.cache->stats().stores >= 1);
  CHECK(connect(client, second, session.get()));
  CHECK(zones.cache->stats().hits >= 1);
}

TEST_CASE("a ticket survives one key rotation, renewed, and is refused after two",
          "[tls][resumption]") {
  Zones zones;
  auto context = site().worker(options(zones, true));
  // Resumes `session` and returns the ticket the client holds afterwards ("" if not resumed).
  auto resume = [&](TestClient& client, SSL_SESSION* session) {
    auto engine = client.connect("site.test", session);
    TlsEngine server(testPool(), context);
    REQUIRE(establish(*engine, server));
    return server.resumed() ? ticketOf(SSL_get0_session(engine->ssl())) : std::string();
  };
  TestClient client(site().pki, TLS1_2_VERSION);
  connect(client, context);
  auto session = client.takeSession();
  std::string ticket = ticketOf(session.get());
  CHECK(resume(client, session.get()) == ticket);  // sealed with current: kept
  REQUIRE(zones.keys->rotate());
  std::string renewed = resume(client, session.get());  // sealed with what is now "previous"
  CHECK_FALSE(renewed.empty());
  CHECK(renewed != ticket);
  REQUIRE(zones.keys->rotate());
  CHECK(resume(client, session.get()).empty());

  TestClient modern(site().pki);
  connect(modern, context);
  session = modern.takeSession();
  REQUIRE(zones.keys->rotate());
  CHECK(connect(modern, context, session.get()));
  REQUIRE(zones.keys->rotate());
  CHECK_FALSE(connect(modern, context, session.get()));
}

TEST_CASE("sessions of one frontend do not resume on another", "[tls][resumption]") {
  Zones zones;
  auto www = site().worker(options(zones, false, "www"));
  auto api = site().worker(options(zones, false, "api"));
  TestClient client(site().pki, TLS1_2_VERSION);
  connect(client, www);
  auto session = client.takeSession();
  CHECK_FALSE(connect(client, api, session.get()));
  CHECK(connect(client, www, session.get()));
}

TEST_CASE("a context detached from its zones keeps serving and sealing tickets",
          "[tls][resumption][drain]") {
  Zones zones;
  auto draining = site().worker(options(zones, true));
  auto current = site().worker(options(zones, true));
  draining->detachZones();
  zones.keys->rotate();  // the master rotates; the draining worker keeps its copy
  TestClient client(site().pki);
  REQUIRE_FALSE(connect(client, draining));
  auto session = client.takeSession();
  REQUIRE(session);
  CHECK(connect(client, current, session.get()));  // its key is "previous" to the others now
  std::uint64_t stores = zones.cache->stats().stores;
  TestClient old(site().pki, TLS1_2_VERSION);
  connect(old, draining);
  CHECK(zones.cache->stats().stores == stores);  // a detached context no longer writes the zone
}

TEST_CASE("in-memory handshakes per second, full and resumed", "[.][bench]") {
  Zones zones;
  auto run = [&](int version, bool tickets, bool resume) {
    auto context = site().worker(options(zones, tickets));
    TestClient client(site().pki, version);
    connect(client, context);
    auto session = client.takeSession();
    constexpr int kRounds = 500;
    int resumed = 0;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) {
      resumed += connect(client, context, resume ? session.get() : nullptr);
      // A TLS 1.3 client spends each ticket once and keeps the newest, like browsers do.
      if (auto fresh = client.takeSession(); fresh && version == TLS1_3_VERSION) {
        session = std::move(fresh);
      }
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    WARN((version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2")
         << (tickets ? " tickets" : " ids") << (resume ? " resumed " : " full ")
         << kRounds / seconds << "/s, resumed " << resumed);
  };
  run(TLS1_2_VERSION, false, false);
  run(TLS1_2_VERSION, false, true);
  run(TLS1_3_VERSION, true, false);
  run(TLS1_3_VERSION, true, true);
}
