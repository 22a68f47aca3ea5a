// ParkingLot: parked descriptors handed back when their peer speaks or closes, closed in deadline
// order, all closed by closeAll, none touched after.
#include "worker/net/parking.hpp"

#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <vector>

using molt::worker::ParkingLot;

namespace {

struct Pair {
  int parked = -1, peer = -1;
  Pair() {
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    parked = fds[0];
    peer = fds[1];
  }
  // The parked end was closed: the peer reads EOF.
  bool closedByLot() const {
    char c;
    return recv(peer, &c, 1, MSG_DONTWAIT) == 0;
  }
};

struct Woken {
  std::vector<std::pair<int, const void*>> fds;
  int expired = 0;
};

void runFor(uv_loop_t* loop, std::uint64_t ms) {
  uv_update_time(loop);
  std::uint64_t end = uv_now(loop) + ms;
  while (uv_now(loop) < end) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(2000);
    uv_update_time(loop);
  }
}

// A lot on a loop of its own, recording what it hands back and how often it closed expired ones.
struct LotOnLoop {
  uv_loop_t loop;
  Woken woken;
  std::unique_ptr<ParkingLot> lot;
  LotOnLoop() {
    uv_loop_init(&loop);
    lot = std::make_unique<ParkingLot>(
        &loop,
        [](void* context, int fd, const void* owner) {
          static_cast<Woken*>(context)->fds.emplace_back(fd, owner);
        },
        [](void* context) { ++static_cast<Woken*>(context)->expired; }, &woken);
  }
  // Destroys the lot and lets its handles close; true when the loop had nothing else left.
  bool finish() {
    lot.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0;
  }
};

}  // namespace

TEST_CASE("parked descriptors wake on input or close, expire in deadline order", "[parking]") {
  LotOnLoop t;
  uv_loop_t& loop = t.loop;
  Woken& woken = t.woken;
  ParkingLot& lot = *t.lot;
  {
    int ownerA = 0, ownerB = 0;
    std::vector<Pair> pairs(5);
    std::uint64_t now = uv_now(&loop);
    // Owner A: deadlines given out of order (the lot keeps each owner's list sorted).
    REQUIRE(lot.park(pairs[0].parked, &ownerA, now + 150));
    REQUIRE(lot.park(pairs[1].parked, &ownerA, now + 60));
    REQUIRE(lot.park(pairs[2].parked, &ownerB, now + 100000));
    REQUIRE(lot.park(pairs[3].parked, &ownerB, now + 100000));
    REQUIRE(lot.park(pairs[4].parked, &ownerA, now + 100000));
    CHECK(lot.size() == 5);

    // Input on one, a close on another: both handed back, with their owner; nothing is read.
    REQUIRE(send(pairs[2].peer, "x", 1, 0) == 1);
    shutdown(pairs[3].peer, SHUT_WR);
    runFor(&loop, 30);
    REQUIRE(woken.fds.size() == 2);
    CHECK(woken.fds[0].second == &ownerB);
    CHECK(woken.fds[1].second == &ownerB);
    std::vector<int> back = {woken.fds[0].first, woken.fds[1].first};
    std::sort(back.begin(), back.end());
    std::vector<int> expected = {pairs[2].parked, pairs[3].parked};
    std::sort(expected.begin(), expected.end());
    CHECK(back == expected);
    char c;
    CHECK(recv(pairs[2].parked, &c, 1, MSG_DONTWAIT) == 1);  // the byte is still there
    CHECK(lot.size() == 3);

    // The 60 ms one expires first, then the 150 ms one; the others stay.
    runFor(&loop, 60);
    CHECK(pairs[1].closedByLot());
    CHECK_FALSE(pairs[0].closedByLot());
    CHECK(woken.expired == 1);
    runFor(&loop, 120);
    CHECK(pairs[0].closedByLot());
    CHECK(woken.expired == 2);
    CHECK(lot.size() == 1);

    // closeAll closes what is left, and the lot parks nothing more.
    lot.closeAll();
    CHECK(pairs[4].closedByLot());
    CHECK(lot.size() == 0);
    Pair late;
    CHECK_FALSE(lot.park(late.parked, &ownerA, now + 1000));
    close(late.parked);
    close(late.peer);
    for (auto& p : pairs) close(p.peer);
    close(pairs[2].parked);
    close(pairs[3].parked);
  }
  CHECK(t.finish());
}

TEST_CASE("a lot emptied and used again, and thousands of descriptors in it", "[parking]") {
  LotOnLoop t;
  uv_loop_t& loop = t.loop;
  Woken& woken = t.woken;
  ParkingLot& lot = *t.lot;
  {
    int owner = 0;
    for (int round = 0; round < 2; ++round) {
      std::vector<Pair> pairs(2000);  // more than one block of slots
      std::uint64_t now = uv_now(&loop);
      for (auto& p : pairs) REQUIRE(lot.park(p.parked, &owner, now + 100000));
      CHECK(lot.size() == 2000);
      for (auto& p : pairs) REQUIRE(send(p.peer, "y", 1, 0) == 1);
      runFor(&loop, 50);
      CHECK(woken.fds.size() == 2000);
      CHECK(lot.size() == 0);
      for (auto& [fd, o] : woken.fds) close(fd);
      woken.fds.clear();
      for (auto& p : pairs) close(p.peer);
    }
  }
  CHECK(t.finish());
}
