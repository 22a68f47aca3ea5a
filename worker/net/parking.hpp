// ParkingLot: idle connections kept as nothing but their descriptors.
//
// An HTTP/1.1 keep-alive connection idle for a while (plaintext, nothing buffered, nothing owed
// either way) costs a session object, a libuv handle, a stream and a timer — about 2 KiB — while
// all it waits for is the client's next byte. Parked, it is a 48-byte slot: the descriptor in an
// epoll set of the lot's own (one libuv poll handle watches that set, for every parked
// connection), and a place in a list ordered by keep-alive deadline (one timer for the lot). When
// the client sends something or closes, the lot hands the descriptor back (`Wake`) and the worker
// serves it with a new session; when the deadline passes, the lot closes it, as the session's
// keep-alive timeout would have. Slots come from blocks of the lot's own, so parked connections do
// not pin the pages of the heap that their sessions freed.
//
// A TLS keep-alive connection parks with a Cargo too: OpenSSL's state of the connection, which
// its next session goes on with; it is handed back at its deadline as well, to be closed with
// close_notify.
//
// An idle tunnel (a websocket, a tcp-mode connection) parks the same way with both of its
// descriptors and a Cargo: what its next session needs to go on as if it had never stopped. It is
// handed back when either side sends or closes, and at its deadline too: the tunnel's timeout, its
// log line and its server's count belong to the session that takes it back.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/uv_handle.hpp"

namespace molt::worker {

class ParkingLot {
 public:
  // What a parked tunnel keeps besides its descriptors. The lot owns it while the tunnel is
  // parked, and destroys it when it closes the tunnel (closeAll).
  struct Cargo {
    virtual ~Cargo() = default;
  };
  // A parked connection handed back: its descriptors (`peer` is -1 for a client connection
  // alone) and its cargo are the caller's from now on. `owner` is what park() was given.
  struct Parked {
    int fd = -1;
    int peer = -1;
    const void* owner = nullptr;
    std::unique_ptr<Cargo> cargo;
    std::uint64_t deadline = 0;  // as parked
  };
  // A parked connection's client (or a tunnel's either side) sent bytes or closed, or a tunnel's
  // deadline came.
  using Wake = void (*)(void* context, Parked parked);
  // Parked connections were closed at their deadline (size() is smaller).
  using Expired = void (*)(void* context);

  ParkingLot(uv_loop_t* loop, Wake wake, Expired expired, void* context);
  ~ParkingLot();  // closes every parked connection
  ParkingLot(const ParkingLot&) = delete;
  ParkingLot& operator=(const ParkingLot&) = delete;

  // Keeps `fd` until its client sends or closes (Wake) or `deadline` (loop time, ms) passes
  // (closed). Every connection of one `owner` must have the same keep-alive time, so that its
  // deadlines come in order. False: not parked (the lot could not be set up, or no memory), and
  // `fd` is still the caller's.
  bool park(int fd, const void* owner, std::uint64_t deadline) noexcept;
  // A tunnel: `fd` and `peer` are watched both, and handed back with `cargo` when either has
  // something to read, or at `deadline`. True: the lot took the descriptors and the cargo
  // (`cargo` is empty); false: all three are still the caller's. A connection with cargo and no
  // peer (`peer` -1: a TLS keep-alive connection) is handed back at its deadline too.
  bool park(int fd, int peer, const void* owner, std::uint64_t deadline,
            std::unique_ptr<Cargo>& cargo) noexcept;
  // Parked connections, and the descriptors they hold.
  std::size_t size() const noexcept { return count_; }
  std::size_t descriptors() const noexcept { return descriptors_; }
  // Hands every parked connection back through Wake (a worker that drains serves them again).
  void wakeAll() noexcept;
  // Closes every parked connection now, and the lot with them: it parks nothing more (a worker
  // that drains or stops).
  void closeAll() noexcept;

 private:
  struct Slot {
    Slot* prev;
    Slot* next;
    const void* owner;
    std::uint64_t deadline;
    Cargo* cargo;  // a tunnel's; null for a client connection alone
    int fd;        // -1 while the slot is free
    int peer;      // a tunnel's other descriptor, else -1
  };
  // The slots of one owner, in deadline order.
  struct Line {
    const void* owner = nullptr;
    Slot* head = nullptr;
    Slot* tail = nullptr;
  };
  static constexpr std::size_t kSlotsPerBlock = 64 * 1024 / sizeof(Slot);
  static constexpr int kEventsPerRound = 128;

  bool setUp() noexcept;
  bool watch(int fd, Slot* slot, std::uintptr_t tag) noexcept;
  Slot* allocate() noexcept;
  void release(Slot* slot) noexcept;
  void dropBlocksIfEmpty() noexcept;
  void closeSlot(Slot* slot) noexcept;
  Line& lineOf(const void* owner);
  void unlink(Slot* slot) noexcept;
  void handBack(Slot* slot) noexcept;
  void endRound() noexcept;
  void armTimer() noexcept;
  void onReadable() noexcept;
  void onTimer() noexcept;

  uv_loop_t* loop_;
  Wake wake_;
  Expired expired_;
  void* context_;
  int epoll_ = -1;
  common::UvHandle<uv_poll_t> poll_;
  common::UvHandle<uv_timer_t> timer_;
  std::uint64_t timerDue_ = UINT64_MAX;
  std::vector<Line> lines_;
  std::vector<std::unique_ptr<Slot[]>> blocks_;
  Slot* free_ = nullptr;     // free slots, linked through `next`
  Slot* retired_ = nullptr;  // freed in the current round: free when it ends
  std::size_t count_ = 0;
  std::size_t descriptors_ = 0;
  // Handing back one by one (a round of events, the timer, wakeAll): slots freed stay unused, and
  // the blocks stay, until the round is over, so that an event still to come in it never points
  // into freed memory or into another connection's slot.
  bool inRound_ = false;
  bool closed_ = false;
};

}  // namespace molt::worker
