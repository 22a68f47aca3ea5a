// ParkingLot: parked descriptors handed back when their peer speaks or closes, closed in deadline
// order, all closed by closeAll, none touched after; tunnels (two descriptors and a cargo) handed
// back once whichever side speaks, and at their deadline.
#include "worker/net/parking.hpp"

#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
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
  std::vector<ParkingLot::Parked> tunnels;
  int expired = 0;
  std::function<void()> onWake;  // what the worker does then (it may park again at once)
};

// A tunnel's cargo that says when it is destroyed.
struct Tag final : ParkingLot::Cargo {
  explicit Tag(int& destroyed, int id) : destroyed(destroyed), id(id) {}
  ~Tag() override { ++destroyed; }
  int& destroyed;
  int id;
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
        [](void* context, ParkingLot::Parked parked) {
          auto* woken = static_cast<Woken*>(context);
          if (parked.cargo)
            woken->tunnels.push_back(std::move(parked));
          else
            woken->fds.emplace_back(parked.fd, parked.owner);
          if (woken->onWake) woken->onWake();
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

TEST_CASE(
    "parked tunnels wake once from either side, at their deadline, and close with their cargo",
    "[parking]") {
  LotOnLoop t;
  uv_loop_t& loop = t.loop;
  Woken& woken = t.woken;
  ParkingLot& lot = *t.lot;
  int destroyed = 0;
  {
    int backend = 0, frontend = 0;
    std::vector<Pair> clients(4), servers(4);
    std::uint64_t now = uv_now(&loop);
    auto park = [&](int i, std::uint64_t deadline) {
      std::unique_ptr<ParkingLot::Cargo> cargo = std::make_unique<Tag>(destroyed, i);
      REQUIRE(lot.park(clients[i].parked, servers[i].parked, &backend, deadline, cargo));
      CHECK_FALSE(cargo);  // the lot has it
    };
    for (int i = 0; i < 3; ++i) park(i, now + 100000);
    park(3, now + 80);
    Pair keepAlive;
    REQUIRE(lot.park(keepAlive.parked, &frontend, now + 100000));
    CHECK(lot.size() == 5);
    CHECK(lot.descriptors() == 9);

    // Tunnel 0: its server speaks. Tunnel 1: both sides at once, in one round: handed back once.
    REQUIRE(send(servers[0].peer, "s", 1, 0) == 1);
    REQUIRE(send(clients[1].peer, "c", 1, 0) == 1);
    shutdown(servers[1].peer, SHUT_WR);
    runFor(&loop, 30);
    REQUIRE(woken.tunnels.size() == 2);
    CHECK(woken.fds.empty());
    for (auto& parked : woken.tunnels) {
      int id = static_cast<Tag&>(*parked.cargo).id;
      REQUIRE((id == 0 || id == 1));
      CHECK(parked.fd == clients[id].parked);
      CHECK(parked.peer == servers[id].parked);
      CHECK(parked.owner == &backend);
    }
    CHECK(destroyed == 0);
    CHECK(lot.size() == 3);
    CHECK(lot.descriptors() == 5);

    // Tunnel 3's deadline: handed back (its session ends it), not closed.
    runFor(&loop, 100);
    REQUIRE(woken.tunnels.size() == 3);
    CHECK(static_cast<Tag&>(*woken.tunnels[2].cargo).id == 3);
    CHECK(woken.expired == 0);
    CHECK_FALSE(clients[3].closedByLot());
    CHECK_FALSE(servers[3].closedByLot());

    // closeAll closes tunnel 2's both sides and destroys its cargo.
    lot.closeAll();
    CHECK(clients[2].closedByLot());
    CHECK(servers[2].closedByLot());
    CHECK(keepAlive.closedByLot());
    CHECK(destroyed == 1);
    woken.tunnels.clear();
    CHECK(destroyed == 4);
    for (int i : {0, 1, 3}) close(clients[i].parked), close(servers[i].parked);
    for (auto& p : clients) close(p.peer);
    for (auto& p : servers) close(p.peer);
    close(keepAlive.peer);
  }
  CHECK(t.finish());
}

TEST_CASE("a tunnel parked while the lot hands others back is not taken for one of them",
          "[parking]") {
  LotOnLoop t;
  Woken& woken = t.woken;
  ParkingLot& lot = *t.lot;
  int destroyed = 0, backend = 0;
  {
    std::vector<Pair> clients(3), servers(3);
    std::uint64_t deadline = uv_now(&t.loop) + 100000;
    auto park = [&](int i) {
      std::unique_ptr<ParkingLot::Cargo> cargo = std::make_unique<Tag>(destroyed, i);
      return lot.park(clients[i].parked, servers[i].parked, &backend, deadline, cargo);
    };
    REQUIRE(park(0));
    REQUIRE(park(1));
    // Both sides of both speak: four events in one round. The first wake parks tunnel 2 (quiet):
    // it must not get the slot whose second event is still to come in this round.
    for (int i = 0; i < 2; ++i) {
      REQUIRE(send(clients[i].peer, "c", 1, 0) == 1);
      REQUIRE(send(servers[i].peer, "s", 1, 0) == 1);
    }
    bool parkedAgain = false;
    woken.onWake = [&] {
      if (!std::exchange(parkedAgain, true)) REQUIRE(park(2));
    };
    runFor(&t.loop, 30);
    REQUIRE(woken.tunnels.size() == 2);
    std::vector<int> ids;
    for (auto& parked : woken.tunnels) ids.push_back(static_cast<Tag&>(*parked.cargo).id);
    std::sort(ids.begin(), ids.end());
    CHECK(ids == std::vector<int>{0, 1});
    CHECK(lot.size() == 1);
    CHECK(lot.descriptors() == 2);
    CHECK(destroyed == 0);
    lot.closeAll();
    CHECK(clients[2].closedByLot());
    CHECK(servers[2].closedByLot());
    CHECK(destroyed == 1);
    woken.tunnels.clear();
    for (int i : {0, 1}) close(clients[i].parked), close(servers[i].parked);
    for (auto& p : clients) close(p.peer);
    for (auto& p : servers) close(p.peer);
  }
  CHECK(t.finish());
}

TEST_CASE("a connection parked with cargo and no peer is handed back on input and at its deadline",
          "[parking]") {
  LotOnLoop t;
  uv_loop_t& loop = t.loop;
  Woken& woken = t.woken;
  ParkingLot& lot = *t.lot;
  int destroyed = 0;
  {
    int frontend = 0;
    std::vector<Pair> pairs(4);
    std::uint64_t now = uv_now(&loop);
    // One owner's line, as a frontend's keep-alive connections in clear and TLS share one.
    auto parkWithCargo = [&](int i, std::uint64_t deadline) {
      std::unique_ptr<ParkingLot::Cargo> cargo = std::make_unique<Tag>(destroyed, i);
      REQUIRE(lot.park(pairs[i].parked, -1, &frontend, deadline, cargo));
      CHECK_FALSE(cargo);
    };
    parkWithCargo(0, now + 100000);
    REQUIRE(lot.park(pairs[1].parked, &frontend, now + 50));
    parkWithCargo(2, now + 60);
    parkWithCargo(3, now + 100000);
    CHECK(lot.size() == 4);
    CHECK(lot.descriptors() == 4);

    REQUIRE(send(pairs[0].peer, "t", 1, 0) == 1);
    runFor(&loop, 30);
    REQUIRE(woken.tunnels.size() == 1);
    CHECK(woken.tunnels[0].fd == pairs[0].parked);
    CHECK(woken.tunnels[0].peer == -1);
    CHECK(woken.tunnels[0].deadline == now + 100000);
    CHECK(static_cast<Tag&>(*woken.tunnels[0].cargo).id == 0);

    // At their deadlines: the plain one is closed by the lot, the one with cargo handed back
    // with its deadline (its owner closes it its own way).
    runFor(&loop, 80);
    CHECK(pairs[1].closedByLot());
    CHECK(woken.expired == 1);
    REQUIRE(woken.tunnels.size() == 2);
    CHECK(woken.tunnels[1].fd == pairs[2].parked);
    CHECK(woken.tunnels[1].deadline == now + 60);
    CHECK_FALSE(pairs[2].closedByLot());
    CHECK(destroyed == 0);

    lot.closeAll();  // closes the last one and destroys its cargo
    CHECK(pairs[3].closedByLot());
    CHECK(destroyed == 1);
    woken.tunnels.clear();
    CHECK(destroyed == 3);
    close(pairs[0].parked);
    close(pairs[2].parked);
    for (auto& p : pairs) close(p.peer);
  }
  CHECK(t.finish());
}
