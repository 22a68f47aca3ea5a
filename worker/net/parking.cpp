// ParkingLot: see parking.hpp.
#include "worker/net/parking.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <new>

namespace molt::worker {

ParkingLot::ParkingLot(uv_loop_t* loop, Wake wake, Expired expired, void* context)
    : loop_(loop), wake_(wake), expired_(expired), context_(context) {}

ParkingLot::~ParkingLot() {
  closeAll();
}

// The epoll set, its poll handle and the timer, made on the first park.
bool ParkingLot::setUp() noexcept {
  if (epoll_ >= 0) return true;
  if (closed_) return false;
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return false;
  if (uv_poll_init(loop_, poll_.get(), fd) != 0) {
    ::close(fd);
    return false;
  }
  epoll_ = fd;
  poll_->data = this;
  uv_poll_start(poll_.get(), UV_READABLE, [](uv_poll_t* handle, int, int) {
    if (auto* self = static_cast<ParkingLot*>(handle->data)) self->onReadable();
  });
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
  return true;
}

ParkingLot::Slot* ParkingLot::allocate() noexcept {
  if (!free_) {
    std::unique_ptr<Slot[]> block(new (std::nothrow) Slot[kSlotsPerBlock]);
    if (!block) return nullptr;
    for (std::size_t i = kSlotsPerBlock; i-- > 0;) {
      block[i].next = free_;
      free_ = &block[i];
    }
    blocks_.push_back(std::move(block));
  }
  Slot* slot = free_;
  free_ = slot->next;
  return slot;
}

// An empty lot gives its blocks back: what a burst of idle connections needed is not kept.
void ParkingLot::release(Slot* slot) noexcept {
  slot->next = free_;
  free_ = slot;
  if (--count_ == 0) {
    free_ = nullptr;
    blocks_.clear();
    blocks_.shrink_to_fit();
  }
}

ParkingLot::Line& ParkingLot::lineOf(const void* owner) {
  for (Line& line : lines_)
    if (line.owner == owner) return line;
  lines_.push_back(Line{owner, nullptr, nullptr});
  return lines_.back();
}

bool ParkingLot::park(int fd, const void* owner, std::uint64_t deadline) noexcept {
  if (!setUp()) return false;
  Line* line;
  try {
    line = &lineOf(owner);
  } catch (const std::bad_alloc&) {
    return false;
  }
  Slot* slot = allocate();
  if (!slot) return false;
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP;
  event.data.ptr = slot;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) {
    slot->next = free_;
    free_ = slot;
    return false;
  }
  *slot = Slot{nullptr, nullptr, owner, deadline, fd};
  ++count_;
  // In deadline order: almost always at the tail (parks come in the order connections went idle).
  Slot* after = line->tail;
  while (after && after->deadline > deadline) after = after->prev;
  slot->prev = after;
  slot->next = after ? after->next : line->head;
  (slot->next ? slot->next->prev : line->tail) = slot;
  (after ? after->next : line->head) = slot;
  if (deadline < timerDue_) armTimer();
  return true;
}

void ParkingLot::unlink(Slot* slot) noexcept {
  Line& line = lineOf(slot->owner);
  (slot->prev ? slot->prev->next : line.head) = slot->next;
  (slot->next ? slot->next->prev : line.tail) = slot->prev;
}

void ParkingLot::armTimer() noexcept {
  if (epoll_ < 0) return;
  std::uint64_t due = UINT64_MAX;
  for (const Line& line : lines_)
    if (line.head) due = std::min(due, line.head->deadline);
  timerDue_ = due;
  if (due == UINT64_MAX) return (void)uv_timer_stop(timer_.get());
  std::uint64_t now = uv_now(loop_);
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* handle) {
        if (auto* self = static_cast<ParkingLot*>(handle->data)) self->onTimer();
      },
      due > now ? due - now : 0, 0);
}

// Keep-alive time over: closed, as the session would have closed it.
void ParkingLot::onTimer() noexcept {
  std::uint64_t now = uv_now(loop_);
  std::size_t closed = 0;
  for (Line& line : lines_) {
    while (line.head && line.head->deadline <= now) {
      Slot* slot = line.head;
      unlink(slot);
      ::close(slot->fd);  // its only descriptor: leaves the epoll set with it
      release(slot);
      ++closed;
    }
  }
  armTimer();
  if (closed) expired_(context_);
}

// Level-triggered: what one round leaves is reported again on the loop's next turn.
void ParkingLot::onReadable() noexcept {
  epoll_event events[kEventsPerRound];
  int n = epoll_wait(epoll_, events, kEventsPerRound, 0);
  for (int i = 0; i < n; ++i) {
    handBack(static_cast<Slot*>(events[i].data.ptr));
  }
  if (n > 0) armTimer();
}

void ParkingLot::wakeAll() noexcept {
  for (Line& line : lines_)
    while (line.head) handBack(line.head);
  armTimer();
}

// The slot goes, then the descriptor goes back to the worker (which may park again at once).
void ParkingLot::handBack(Slot* slot) noexcept {
  int fd = slot->fd;
  const void* owner = slot->owner;
  epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  unlink(slot);
  release(slot);
  wake_(context_, fd, owner);
}

void ParkingLot::closeAll() noexcept {
  for (Line& line : lines_) {
    while (Slot* slot = line.head) {
      unlink(slot);
      ::close(slot->fd);
      release(slot);
    }
  }
  closed_ = true;
  timerDue_ = UINT64_MAX;
  if (epoll_ < 0) return;
  poll_.close();
  timer_.close();
  ::close(epoll_);
  epoll_ = -1;
}

}  // namespace molt::worker
