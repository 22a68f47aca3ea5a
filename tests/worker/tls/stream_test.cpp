// TlsStream on a real loopback socket: ciphertext held in pooled buffers only while in flight, and
// records left undecrypted while the session does not read.
#include "worker/tls/stream.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "tests/worker/tls/test_support.hpp"
#include "worker/tls/context.hpp"

using molt::worker::BufferPool;
using molt::worker::ClientStream;
using molt::worker::TlsContext;
using molt::worker::TlsEngine;
using molt::worker::TlsPhase;
using molt::worker::TlsStream;
using molt::worker::test::TestClient;
using molt::worker::test::TestFiles;
using molt::worker::test::TestPki;

namespace {

// The worker's side, as a TLS stream sees it: counts the handshakes that ended.
struct Observer final : molt::worker::HandshakeObserver {
  void handshakeStarted() noexcept override {}
  void handshakeEnded() noexcept override { ++handshakes; }
  int handshakes = 0;
};

// The session's side: keeps the plaintext.
struct Handler final : molt::worker::StreamHandler {
  explicit Handler(BufferPool& pool) : pool(pool) {}
  void onStreamData(ClientStream&, char* buffer, std::size_t length) noexcept override {
    received.append(buffer, length);
    pool.give(buffer);
  }
  void onStreamEnd(ClientStream&, int) noexcept override { ended = true; }
  void onStreamWritten(ClientStream&, int) noexcept override {}
  void onStreamShutdown(ClientStream&, int) noexcept override {}
  BufferPool& pool;
  std::string received;
  bool ended = false;
};

// A server TlsStream accepted from a loopback listener, and a client engine over a plain socket
// of the test's, driven by hand between turns of the loop.
struct Connection {
  TestPki pki;
  TestFiles files{{{"/site.pem", pki.issue({"site.test"}, "site").combined()}}};
  uv_loop_t loop;
  BufferPool pool;
  Observer observer;
  Handler handler{pool};
  uv_tcp_t listener;
  std::unique_ptr<TlsStream> server;
  std::shared_ptr<TlsContext> context;
  TestClient client{pki};
  std::unique_ptr<TlsEngine> engine;
  int fd = -1;

  Connection() {
    std::string error;
    context = TlsContext::load({"/site.pem"}, files.source(), {}, error);
    INFO(error);
    REQUIRE(context);
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    listener.data = this;
    sockaddr_in address{};
    uv_ip4_addr("127.0.0.1", 0, &address);
    REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&address), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 8, [](uv_stream_t* l, int status) {
              auto* self = static_cast<Connection*>(l->data);
              if (status < 0 || self->server) return;
              self->server = std::make_unique<TlsStream>(&self->loop, self->pool, self->context,
                                                         self->observer);
              if (self->server->accept(l) != 0) return self->server.reset();
              self->server->setHandler(&self->handler);
              self->server->startReading();
            }) == 0);
    int length = sizeof address;
    uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&address), &length);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    engine = client.connect("site.test");
  }
  ~Connection() {
    if (fd >= 0) close(fd);
    server.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }

  // Moves ciphertext both ways and turns the loop, until `done` or 2,000 rounds.
  template <typename Done>
  bool runUntil(Done done) {
    for (int i = 0; i < 2000 && !done(); ++i) {
      char bytes[16384];
      for (std::size_t n; (n = engine->takeOutput(bytes)) > 0;)
        REQUIRE(send(fd, bytes, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n));
      uv_run(&loop, UV_RUN_NOWAIT);
      ssize_t n = recv(fd, bytes, sizeof bytes, 0);
      if (n > 0) engine->feed({bytes, static_cast<std::size_t>(n)});
      if (engine->phase() == TlsPhase::Handshaking) engine->handshake();
      usleep(200);
    }
    return done();
  }
};

// Sends `request` from the client and answers it with `answer` from the server side.
void exchange(Connection& c, const std::string& request, const std::string& answer) {
  c.handler.received.clear();
  REQUIRE(c.engine->write(request).status == molt::worker::TlsStatus::Ok);
  REQUIRE(c.runUntil([&] { return c.handler.received.size() == request.size(); }));
  CHECK(c.handler.received == request);
  char* reply = c.pool.take();
  answer.copy(reply, answer.size());
  molt::worker::BufferSlice slice{reply, 0, static_cast<std::uint32_t>(answer.size())};
  REQUIRE(c.server->write({&slice, 1}) == 0);
  char plain[256];
  std::string got;
  REQUIRE(c.runUntil([&] {
    auto r = c.engine->read(plain);
    if (r.status == molt::worker::TlsStatus::Ok) got.append(plain, r.bytes);
    return got == answer;
  }));
}

}  // namespace

TEST_CASE("a TLS connection holds no buffer once its ciphertext went through", "[tls][stream]") {
  Connection c;
  REQUIRE(c.runUntil(
      [&] { return c.engine->phase() == TlsPhase::Established && c.observer.handshakes == 1; }));
  CHECK(c.pool.inUse() == 0);  // the handshake's records came and went in pooled buffers
  for (int round = 0; round < 3; ++round) {
    exchange(c, "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n");
    CHECK(c.pool.inUse() == 0);
  }
}

TEST_CASE("records wait undecrypted while the session does not read, then arrive in order",
          "[tls][stream]") {
  Connection c;
  REQUIRE(c.runUntil(
      [&] { return c.engine->phase() == TlsPhase::Established && c.observer.handshakes == 1; }));
  c.server->stopReading();
  std::string sent;
  for (int i = 0; i < 40; ++i) sent += "record " + std::to_string(i) + ";";
  for (int i = 0; i < 40; ++i) {
    std::string piece = "record " + std::to_string(i) + ";";
    REQUIRE(c.engine->write(piece).status == molt::worker::TlsStatus::Ok);
    int turns = 0;
    c.runUntil([&] { return ++turns > 10; });
  }
  CHECK(c.handler.received.empty());
  CHECK(c.pool.inUse() == 0);  // what waits, waits in the socket
  c.server->startReading();
  REQUIRE(c.runUntil([&] { return c.handler.received.size() == sent.size(); }));
  CHECK(c.handler.received == sent);
  CHECK(c.pool.inUse() == 0);
}

TEST_CASE("a TLS connection parked between exchanges is served again by a new stream",
          "[tls][stream][park]") {
  Connection c;
  std::unique_ptr<molt::worker::ParkingLot::Cargo> state;
  REQUIRE(c.runUntil([&] { return c.server != nullptr; }));
  CHECK_FALSE(c.server->takeParkState(state));  // mid-handshake: nothing to park yet
  REQUIRE(c.runUntil(
      [&] { return c.engine->phase() == TlsPhase::Established && c.observer.handshakes == 1; }));
  exchange(c, "GET /1 HTTP/1.1\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n");

  // Refused by the lot: the state goes back, and the same stream serves on.
  REQUIRE(c.server->takeParkState(state));
  REQUIRE(state);
  c.server->restoreParkState(std::move(state));
  exchange(c, "GET /2 HTTP/1.1\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n");

  // Parked: the descriptor (a duplicate) and the state outlive the stream; a new stream made
  // from them goes on with the same TLS session, without a handshake.
  REQUIRE(c.server->takeParkState(state));
  int fd = fcntl(c.server->descriptor(), F_DUPFD_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  c.server.reset();
  int turns = 0;
  c.runUntil([&] { return ++turns > 3; });  // the old stream's handle closes; the duplicate stays
  std::unique_ptr<molt::worker::ParkedTls> parked(
      static_cast<molt::worker::ParkedTls*>(state.release()));
  c.server = std::make_unique<TlsStream>(&c.loop, c.pool, std::move(parked), c.observer);
  REQUIRE(c.server->adopt(fd) == 0);
  c.server->setHandler(&c.handler);
  c.server->startReading();
  exchange(c, "GET /3 HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  CHECK(c.observer.handshakes == 1);
  CHECK(c.server->tlsVersion() == c.engine->version());
  CHECK(c.pool.inUse() == 0);
}
