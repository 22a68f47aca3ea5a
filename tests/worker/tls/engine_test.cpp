#include "worker/tls/engine.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "tests/worker/tls/test_support.hpp"

using molt::worker::TlsContext;
using molt::worker::TlsEngine;
using molt::worker::TlsPhase;
using molt::worker::TlsResult;
using molt::worker::TlsStatus;
using molt::worker::test::establish;
using molt::worker::test::TestClient;
using molt::worker::test::TestFiles;
using molt::worker::test::TestPki;
using molt::worker::test::testPool;
using molt::worker::test::transfer;

namespace {

struct Server {
  TestPki pki;
  TestFiles files{{{"/site.pem", pki.issue({"site.test"}, "site").combined()}}};
  std::shared_ptr<TlsContext> context;
  Server() {
    std::string error;
    context = TlsContext::load({"/site.pem"}, files.source(), {}, error);
    REQUIRE(context);
  }
};

Server& server() {
  static Server instance;
  return instance;
}

// Writes `data` from `from` to `to` in records and returns what `to` read.
std::string send(TlsEngine& from, TlsEngine& to, const std::string& data) {
  std::string received;
  char buffer[4096];
  for (std::size_t done = 0; done < data.size();) {
    std::size_t chunk = std::min<std::size_t>(data.size() - done, 20000);
    auto written = from.write({data.data() + done, chunk});
    REQUIRE(written.status == TlsStatus::Ok);
    done += written.bytes;
    transfer(from, to);
    for (;;) {
      auto got = to.read(buffer);
      if (got.status != TlsStatus::Ok) break;
      received.append(buffer, got.bytes);
    }
  }
  return received;
}

}  // namespace

TEST_CASE("application data flows both ways after the handshake", "[tls][engine]") {
  TestClient client(server().pki);
  auto engine = client.connect("site.test");
  TlsEngine server(testPool(), ::server().context);
  CHECK(engine->write({"early", 5}).status == TlsStatus::WantInput);  // not before the handshake
  REQUIRE(establish(*engine, server));
  CHECK(server.phase() == TlsPhase::Established);
  CHECK(server.serverName() == "site.test");
  CHECK_FALSE(server.resumed());
  std::string request(1 << 20, 'q');
  for (std::size_t i = 0; i < request.size(); ++i) request[i] = static_cast<char>('a' + i % 26);
  CHECK(send(*engine, server, request) == request);
  CHECK(send(server, *engine, "HTTP/1.1 200 OK\r\n\r\n") == "HTTP/1.1 200 OK\r\n\r\n");
}

TEST_CASE("close_notify ends the stream cleanly on the other side", "[tls][engine]") {
  TestClient client(server().pki);
  auto engine = client.connect();
  TlsEngine server(testPool(), ::server().context);
  REQUIRE(establish(*engine, server));
  engine->shutdown();
  CHECK(engine->phase() == TlsPhase::ShutdownSent);
  CHECK(engine->pendingOutput() > 0);
  transfer(*engine, server);
  char buffer[64];
  CHECK(server.read(buffer).status == TlsStatus::Closed);
  CHECK(server.phase() == TlsPhase::Closed);
  server.shutdown();  // answers with its own close_notify
  transfer(server, *engine);
  CHECK(engine->read(buffer).status == TlsStatus::Closed);
}

TEST_CASE("plain HTTP sent to a TLS port fails the handshake with OpenSSL's reason",
          "[tls][engine]") {
  TlsEngine server(testPool(), ::server().context);
  std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  server.feed(request);
  CHECK(server.handshake() == TlsStatus::Failed);
  CHECK(server.phase() == TlsPhase::Failed);
  CHECK_THAT(server.error(), Catch::Matchers::Contains("wrong version number") ||
                                 Catch::Matchers::Contains("http request"));
  char buffer[16];
  CHECK(server.read(buffer).status == TlsStatus::Failed);
}

TEST_CASE("a handshake fed one byte at a time completes", "[tls][engine]") {
  TestClient client(server().pki);
  auto engine = client.connect();
  TlsEngine server(testPool(), ::server().context);
  char byte;
  for (int round = 0; round < 5000 && server.phase() == TlsPhase::Handshaking; ++round) {
    engine->handshake();
    while (engine->takeOutput({&byte, 1}) == 1) {
      server.feed({&byte, 1});
      server.handshake();
    }
    transfer(server, *engine);
  }
  CHECK(server.phase() == TlsPhase::Established);
}

TEST_CASE("an engine holds pooled buffers only while ciphertext waits in them", "[tls][engine]") {
  auto& pool = testPool();
  std::size_t before = pool.inUse();
  {
    TestClient client(server().pki);
    auto engine = client.connect();
    TlsEngine server(pool, ::server().context);
    REQUIRE(establish(*engine, server));
    CHECK(pool.inUse() == before);
    CHECK(send(*engine, server, std::string(100000, 'x')).size() == 100000);
    CHECK(pool.inUse() == before);
    REQUIRE(server.write(std::string_view("reply")).status == TlsStatus::Ok);
    CHECK(pool.inUse() == before + 1);  // one record, waiting to be sent
    transfer(server, *engine);
    char buffer[64];
    auto got = engine->read(buffer);
    REQUIRE(got.status == TlsStatus::Ok);
    CHECK(std::string(buffer, got.bytes) == "reply");
    CHECK(pool.inUse() == before);
    REQUIRE(server.write(std::string_view("unsent")).status == TlsStatus::Ok);
  }
  CHECK(pool.inUse() == before);  // what was never sent went back with the engine
}

TEST_CASE("records taken whole in pool buffers are the same bytes a copy would give",
          "[tls][engine]") {
  TestClient client(server().pki);
  auto engine = client.connect();
  TlsEngine server(testPool(), ::server().context);
  REQUIRE(establish(*engine, server));
  std::string reply(40000, 'r');  // three records, over three buffers
  REQUIRE(server.write(reply).status == TlsStatus::Ok);
  std::size_t pending = server.pendingOutput();
  CHECK(pending > reply.size());
  molt::worker::BufferSlice slice;
  std::size_t taken = 0;
  while (server.takeOutput(slice)) {
    taken += slice.length;
    engine->feed(slice.buffer + slice.offset, slice.length);  // the client's engine takes it
  }
  CHECK(taken == pending);
  CHECK(server.pendingOutput() == 0);
  std::string got;
  char buffer[8192];
  for (TlsResult r; (r = engine->read(buffer)).status == TlsStatus::Ok;)
    got.append(buffer, r.bytes);
  CHECK(got == reply);
}

// The client's order of TLS 1.2 suites by default (Mozilla's "intermediate": every default suite
// is strong, and a client without AES instructions lists ChaCha20-Poly1305 first); the server's
// with tls.prefer_server_ciphers.
TEST_CASE("the client's cipher order decides unless the server's is preferred", "[tls][engine]") {
  for (bool serverOrder : {false, true}) {
    INFO("prefer_server_ciphers " << serverOrder);
    molt::worker::TlsOptions options;
    options.preferServerCiphers = serverOrder;
    std::string error;
    auto context = TlsContext::load({"/site.pem"}, server().files.source(), options, error);
    REQUIRE(context);
    TestClient client(server().pki, TLS1_2_VERSION);
    auto engine = client.connect("site.test");
    REQUIRE(SSL_set_cipher_list(
                engine->ssl(), "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256") == 1);
    TlsEngine serverEngine(testPool(), context);
    REQUIRE(establish(*engine, serverEngine));
    // molt's default list puts AES128-GCM first.
    CHECK(std::string(SSL_get_cipher_name(serverEngine.ssl())) ==
          (serverOrder ? "ECDHE-ECDSA-AES128-GCM-SHA256" : "ECDHE-ECDSA-CHACHA20-POLY1305"));
  }
}
