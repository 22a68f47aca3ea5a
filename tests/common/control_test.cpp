#include "common/control.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>

using namespace molt::common;

TEST_CASE("a control message carries its JSON body and its descriptors together",
          "[common][control]") {
  UniqueFd a, b;
  REQUIRE(makeControlPair(a, b) == 0);
  int pipeFds[2];
  REQUIRE(pipe(pipeFds) == 0);
  UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  int fds[] = {readEnd.get()};
  REQUIRE(sendControl(a.get(), {{"type", "listener"}, {"index", 7}}, fds) == 0);

  ControlMessage message;
  REQUIRE(recvControl(b.get(), message) == 1);
  REQUIRE(message.type() == "listener");
  REQUIRE(message.body["index"] == 7);
  REQUIRE(message.fds.size() == 1);
  // The received descriptor is the same pipe: bytes written to the original arrive on it.
  REQUIRE(write(writeEnd.get(), "z", 1) == 1);
  char c = 0;
  REQUIRE(read(message.fds[0].get(), &c, 1) == 1);
  REQUIRE(c == 'z');
  REQUIRE((fcntl(message.fds[0].get(), F_GETFD) & FD_CLOEXEC));
}

TEST_CASE("control messages keep their boundaries and report EOF", "[common][control]") {
  UniqueFd a, b;
  REQUIRE(makeControlPair(a, b) == 0);
  REQUIRE(sendControl(a.get(), {{"type", "one"}}) == 0);
  REQUIRE(sendControl(a.get(), {{"type", "two"}}) == 0);
  ControlMessage m;
  REQUIRE(recvControl(b.get(), m) == 1);
  REQUIRE(m.type() == "one");
  REQUIRE(recvControl(b.get(), m) == 1);
  REQUIRE(m.type() == "two");
  REQUIRE(recvControl(b.get(), m) == -EAGAIN);
  a.reset();
  REQUIRE(recvControl(b.get(), m) == 0);
}

TEST_CASE("a datagram that is not a JSON object is refused as malformed", "[common][control]") {
  UniqueFd a, b;
  REQUIRE(makeControlPair(a, b) == 0);
  REQUIRE(send(a.get(), "[1,2", 4, 0) == 4);
  ControlMessage m;
  REQUIRE(recvControl(b.get(), m) == -EBADMSG);
}

TEST_CASE("a ControlChannel delivers messages on its loop and queues sends", "[common][control]") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  UniqueFd a, b;
  REQUIRE(makeControlPair(a, b) == 0);
  std::vector<std::string> seen;
  bool closed = false;
  {
    ControlChannel left(
        &loop, std::move(a), [](ControlMessage&&) {}, [] {});
    ControlChannel right(
        &loop, std::move(b),
        [&](ControlMessage&& m) {
          seen.push_back(m.type());
          if (seen.size() == 100) uv_stop(&loop);
        },
        [&] { closed = true; });
    for (int i = 0; i < 100; ++i)
      left.send(ControlMessage{{{"type", "m" + std::to_string(i)}}, {}});
    uv_run(&loop, UV_RUN_DEFAULT);
    REQUIRE(seen.size() == 100);
    REQUIRE(seen.front() == "m0");
    REQUIRE(seen.back() == "m99");
    UniqueFd gone = left.release();
    gone.reset();
    while (!closed) uv_run(&loop, UV_RUN_ONCE);
    REQUIRE(closed);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  REQUIRE(uv_loop_close(&loop) == 0);
}

TEST_CASE("text a sender serialized itself goes in order with other messages; too long is refused",
          "[common][control]") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  UniqueFd a, b;
  REQUIRE(makeControlPair(a, b) == 0);
  std::vector<nlohmann::json> seen;
  {
    ControlChannel left(
        &loop, std::move(a), [](ControlMessage&&) {}, [] {});
    ControlChannel right(
        &loop, std::move(b),
        [&](ControlMessage&& m) {
          seen.push_back(m.body);
          if (seen.size() == 3) uv_stop(&loop);
        },
        [] {});
    REQUIRE(left.send(ControlMessage{{{"type", "first"}}, {}}));
    REQUIRE(left.sendText(R"({"n":2,"type":"second"})", "second"));
    REQUIRE_FALSE(left.sendText(std::string(kMaxControlMessage + 1, ' '), "huge"));
    REQUIRE(left.send(ControlMessage{{{"type", "third"}}, {}}));
    uv_run(&loop, UV_RUN_DEFAULT);
    REQUIRE(seen.size() == 3);
    REQUIRE(seen[0]["type"] == "first");
    REQUIRE(seen[1] == nlohmann::json{{"type", "second"}, {"n", 2}});
    REQUIRE(seen[2]["type"] == "third");
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  REQUIRE(uv_loop_close(&loop) == 0);
}

TEST_CASE("a message over the datagram limit travels in a sealed memfd and reads back whole",
          "[common][control]") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  UniqueFd a, b;
  REQUIRE(makeControlPair(a, b) == 0);
  std::string pem(200 * 1024, 'x');  // a cert.set with a long chain
  std::vector<ControlMessage> seen;
  {
    ControlChannel left(
        &loop, std::move(a), [](ControlMessage&&) {}, [] {});
    ControlChannel right(
        &loop, std::move(b),
        [&](ControlMessage&& m) {
          seen.push_back(std::move(m));
          uv_stop(&loop);
        },
        [] {});
    REQUIRE(left.send(ControlMessage{{{"type", "change"}, {"pem", pem}}, {}}));
    uv_run(&loop, UV_RUN_DEFAULT);
    REQUIRE(seen.size() == 1);
    REQUIRE(seen[0].type() == "large");
    REQUIRE(unwrapLargeControl(seen[0]) == "");
    REQUIRE(seen[0].type() == "change");
    REQUIRE(seen[0].body["pem"] == pem);
    REQUIRE(seen[0].fds.empty());
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  REQUIRE(uv_loop_close(&loop) == 0);
}

TEST_CASE("a large message in a file that is not sealed is refused", "[common][control]") {
  int fd = memfd_create("not-sealed", MFD_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "{\"type\":\"start\"}", 16) == 16);
  ControlMessage m{{{"type", "large"}}, {}};
  m.fds.emplace_back(fd);
  REQUIRE(unwrapLargeControl(m) == "large message in an unsealed file");
  ControlMessage none{{{"type", "large"}}, {}};
  REQUIRE(unwrapLargeControl(none) == "large message without its memfd");
}

TEST_CASE("a datagram that is no message is reported to the channel's owner, not dropped silently",
          "[common][control]") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  UniqueFd a, b;
  REQUIRE(makeControlPair(a, b) == 0);
  std::vector<std::string> invalid;
  std::vector<std::string> types;
  {
    ControlChannel right(
        &loop, std::move(b), [&](ControlMessage&& m) { types.push_back(m.type()); }, [] {},
        [&](const std::string& what) { invalid.push_back(what); });
    std::string big(kMaxControlMessage + 100, ' ');
    REQUIRE(send(a.get(), "not json", 8, 0) == 8);
    REQUIRE(send(a.get(), big.data(), big.size(), 0) == static_cast<ssize_t>(big.size()));
    REQUIRE(sendControl(a.get(), {{"type", "stats"}}) == 0);
    while (types.empty()) uv_run(&loop, UV_RUN_ONCE);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  REQUIRE(uv_loop_close(&loop) == 0);
  REQUIRE(invalid.size() == 2);
  REQUIRE(invalid[0] == "a datagram that is not a JSON object");
  REQUIRE(invalid[1].find("a datagram over 65536 bytes") == 0);
  REQUIRE(types == std::vector<std::string>{"stats"});
}
