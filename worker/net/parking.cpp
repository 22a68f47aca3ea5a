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
      block[i].fd = -1;
      block[i].next = free_;
      free_ = &block[i];
    }
    blocks_.push_back(std::move(block));
  }
  Slot* slot = free_;
  free_ = slot->next;
  return slot;
}

void ParkingLot::release(Slot* slot) noexcept {
  descriptors_ -= slot->peer >= 0 ? 2 : 1;
  slot->fd = -1;
  slot->cargo = nullptr;
  --count_;
  if (inRound_) {
    // Not reused before the round ends: an event still to come in it may name this slot.
    slot->next = retired_;
    retired_ = slot;
    return;
  }
  slot->next = free_;
  free_ = slot;
  dropBlocksIfEmpty();
}

// An empty lot gives its blocks back: what a burst of idle connections needed is not kept.
void ParkingLot::dropBlocksIfEmpty() noexcept {
  if (count_ != 0 || blocks_.empty()) return;
  free_ = nullptr;
  blocks_.clear();
  blocks_.shrink_to_fit();
}

ParkingLot::Line& ParkingLot::lineOf(const void* owner) {
  for (Line& line : lines_)
    if (line.owner == owner) return line;
  lines_.push_back(Line{owner, nullptr, nullptr});
  return lines_.back();
}

// The event's data is the slot, its low bit set for a tunnel's peer (slots are 8-aligned).
bool ParkingLot::watch(int fd, Slot* slot, std::uintptr_t tag) noexcept {
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP;
  event.data.u64 = reinterpret_cast<std::uintptr_t>(slot) | tag;
  return epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) == 0;
}

bool ParkingLot::park(int fd, const void* owner, std::uint64_t deadline) noexcept {
  std::unique_ptr<Cargo> none;
  return park(fd, -1, owner, deadline, none);
}

bool ParkingLot::park(int fd, int peer, const void* owner, std::uint64_t deadline,
                      std::unique_ptr<Cargo>& cargo) noexcept {
  if (!setUp()) return false;
  Line* line;
  try {
    line = &lineOf(owner);
  } catch (const std::bad_alloc&) {
    return false;
  }
  Slot* slot = allocate();
  if (!slot) return false;
  bool watched = watch(fd, slot, 0);
  if (!watched || (peer >= 0 && !watch(peer, slot, 1))) {
    if (watched) epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    slot->next = free_;
    free_ = slot;
    return false;
  }
  *slot = Slot{nullptr, nullptr, owner, deadline, cargo.release(), fd, peer};
  ++count_;
  descriptors_ += peer >= 0 ? 2 : 1;
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

// A line left empty stays until the round ends (endRound).
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

// Keep-alive time over: closed, as the session would have closed it. A connection with cargo is
// handed back: a tunnel's session ends it, with its log line; a TLS connection says close_notify.
void ParkingLot::onTimer() noexcept {
  std::uint64_t now = uv_now(loop_);
  std::size_t closed = 0;
  inRound_ = true;
  for (std::size_t i = 0; i < lines_.size(); ++i) {
    while (lines_[i].head && lines_[i].head->deadline <= now) {
      Slot* slot = lines_[i].head;
      if (slot->cargo) {
        handBack(slot);
        continue;
      }
      unlink(slot);
      ::close(slot->fd);  // its only descriptor: leaves the epoll set with it
      release(slot);
      ++closed;
    }
  }
  endRound();
  if (closed) expired_(context_);
}

// Level-triggered: what one round leaves is reported again on the loop's next turn. Both of a
// tunnel's descriptors may be in one round: the second finds its slot free, and is skipped.
void ParkingLot::onReadable() noexcept {
  epoll_event events[kEventsPerRound];
  int n = epoll_wait(epoll_, events, kEventsPerRound, 0);
  if (n <= 0) return;
  inRound_ = true;
  for (int i = 0; i < n; ++i) {
    auto* slot = reinterpret_cast<Slot*>(events[i].data.u64 & ~std::uint64_t{1});
    if (slot->fd >= 0) handBack(slot);
  }
  endRound();
}

void ParkingLot::wakeAll() noexcept {
  inRound_ = true;
  for (std::size_t i = 0; i < lines_.size(); ++i)
    while (lines_[i].head) handBack(lines_[i].head);
  endRound();
}

// What handing back one by one left for later: empty lines (owners come and go: a tunnel's is
// its backend), unused blocks, the timer.
void ParkingLot::endRound() noexcept {
  inRound_ = false;
  while (Slot* slot = retired_) {
    retired_ = slot->next;
    slot->next = free_;
    free_ = slot;
  }
  for (std::size_t i = lines_.size(); i-- > 0;) {
    if (lines_[i].head) continue;
    lines_[i] = lines_.back();
    lines_.pop_back();
  }
  dropBlocksIfEmpty();
  armTimer();
}

// The slot goes, then the descriptors go back to the worker (which may park again at once).
void ParkingLot::handBack(Slot* slot) noexcept {
  Parked parked{slot->fd, slot->peer, slot->owner, std::unique_ptr<Cargo>(slot->cargo),
                slot->deadline};
  epoll_ctl(epoll_, EPOLL_CTL_DEL, parked.fd, nullptr);
  if (parked.peer >= 0) epoll_ctl(epoll_, EPOLL_CTL_DEL, parked.peer, nullptr);
  unlink(slot);
  release(slot);
  wake_(context_, std::move(parked));
}

void ParkingLot::closeSlot(Slot* slot) noexcept {
  unlink(slot);
  ::close(slot->fd);
  if (slot->peer >= 0) ::close(slot->peer);
  delete slot->cargo;
  release(slot);
}

void ParkingLot::closeAll() noexcept {
  bool nested = inRound_;  // called from a Wake: the round in progress ends it
  inRound_ = true;
  for (Line& line : lines_)
    while (Slot* slot = line.head) closeSlot(slot);
  lines_.clear();
  closed_ = true;
  if (!nested) endRound();
  timerDue_ = UINT64_MAX;
  if (epoll_ < 0) return;
  poll_.close();
  timer_.close();
  ::close(epoll_);
  epoll_ = -1;
}

}  // namespace molt::worker
