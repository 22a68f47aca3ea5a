#include "common/control.hpp"

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
