// ParkingLot: idle keep-alive client connections kept as nothing but their descriptor.
//
// An HTTP/1.1 keep-alive connection idle for a while (plaintext, nothing buffered, nothing owed
// either way) costs a session object, a libuv handle, a stream and a timer — about 2 KiB — while
// all it waits for is the client's next byte. Parked, it is a 40-byte slot: the descriptor in an
// epoll set of the lot's own (one libuv poll handle watches that set, for every parked
// connection), and a place in a list ordered by keep-alive deadline (one timer for the lot). When
// the client sends something or closes, the lot hands the descriptor back (`Wake`) and the worker
// serves it with a new session; when the deadline passes, the lot closes it, as the session's
// keep-alive timeout would have. Slots come from blocks of the lot's own, so parked connections do
// not pin the pages of the heap that their sessions freed.
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
  // The client of a parked connection sent bytes or closed: `fd` is the caller's from now on.
  // `owner` is what park() was given (the worker's Frontend).
  using Wake = void (*)(void* context, int fd, const void* owner);
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
  std::size_t size() const noexcept { return count_; }
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
    int fd;
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
  Slot* allocate() noexcept;
  void release(Slot* slot) noexcept;
  Line& lineOf(const void* owner);
  void unlink(Slot* slot) noexcept;
  void handBack(Slot* slot) noexcept;
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
  Slot* free_ = nullptr;  // free slots, linked through `next`
  std::size_t count_ = 0;
  bool closed_ = false;
};

}  // namespace molt::worker
