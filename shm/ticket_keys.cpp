#include "shm/ticket_keys.hpp"

#include <openssl/rand.h>

#include <cstring>

namespace molt::shm {
namespace {

static_assert(sizeof(TicketKey) == 88 && sizeof(TicketKeySet) == 280, "layout version 1");
static_assert(sizeof(ZoneHeader) + sizeof(TicketKeys::Layout) <= TicketKeys::kZoneBytes);

// Every shared word is accessed atomically (relaxed) so the racy reads a seqlock relies on are
// defined behaviour; the builtins accept the const pointers of a read-only mapping.
void storeWords(std::uint64_t* to, const std::uint64_t* from) {
  for (std::size_t i = 0; i < TicketKeys::kWords; ++i) {
    __atomic_store_n(&to[i], from[i], __ATOMIC_RELAXED);
  }
}

// Moves readers to the other copy. The release store publishes the copy written before it;
// the fence keeps the next copy's writes from being seen before the new sequence.
void bump(std::uint64_t& sequence) {
  __atomic_store_n(&sequence, __atomic_load_n(&sequence, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_RELEASE);
}

}  // namespace

bool makeTicketKey(TicketKey& key, std::int64_t now) noexcept {
  key.created = now;
  return RAND_bytes(key.name.data(), key.name.size()) == 1 &&
         RAND_bytes(key.aesKey.data(), key.aesKey.size()) == 1 &&
         RAND_bytes(key.hmacKey.data(), key.hmacKey.size()) == 1;
}

std::unique_ptr<TicketKeys> TicketKeys::create(std::string& error, std::int64_t now) {
  std::optional<Zone> zone = Zone::create(ZoneKind::TicketKeys, kLayoutVersion, kZoneBytes, error);
  if (!zone) return nullptr;
  std::unique_ptr<TicketKeys> keys(new TicketKeys(std::move(*zone), true));
  TicketKeySet set{};
  if (!makeTicketKey(set.previous, now) || !makeTicketKey(set.current, now) ||
      !makeTicketKey(set.next, now)) {
    error = "ticket keys: RAND_bytes failed";
    return nullptr;
  }
  set.rotatedAt = now;
  keys->publish(set);
  return keys;
}

std::unique_ptr<TicketKeys> TicketKeys::attach(common::UniqueFd fd, Access access,
                                               std::string& error) {
  std::optional<Zone> zone =
      Zone::open(std::move(fd), ZoneKind::TicketKeys, kLayoutVersion, kZoneBytes, access, error);
  if (!zone) return nullptr;
  return std::unique_ptr<TicketKeys>(new TicketKeys(std::move(*zone), access == Access::ReadWrite));
}

TicketKeys::Layout& TicketKeys::layout() const {
  return *reinterpret_cast<Layout*>(zone_.data() + sizeof(ZoneHeader));
}

TicketKeySet TicketKeys::snapshot() const noexcept {
  const Layout& l = layout();
  std::uint64_t words[kWords];
  for (;;) {
    std::uint64_t sequence = __atomic_load_n(&l.sequence, __ATOMIC_ACQUIRE);
    const std::uint64_t* copy = l.copies[sequence & 1];
    for (std::size_t i = 0; i < kWords; ++i) words[i] = __atomic_load_n(&copy[i], __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&l.sequence, __ATOMIC_RELAXED) == sequence) break;
  }
  TicketKeySet set;
  std::memcpy(&set, words, sizeof set);
  return set;
}

// Readers use copy (sequence & 1); each bump sends them to the copy just written and frees
// the other one for writing. An odd sequence on entry means the last writer died while writing
// copy 0: copy 1 is intact and is what readers use, so it is copied over first.
void TicketKeys::publish(const TicketKeySet& keys) noexcept {
  Layout& l = layout();
  std::uint64_t words[kWords];
  std::memcpy(words, &keys, sizeof words);
  if (__atomic_load_n(&l.sequence, __ATOMIC_RELAXED) & 1) {
    storeWords(l.copies[0], l.copies[1]);
    bump(l.sequence);
  }
  bump(l.sequence);  // odd: readers on copy 1
  storeWords(l.copies[0], words);
  bump(l.sequence);  // even: readers on copy 0
  storeWords(l.copies[1], words);
}

bool TicketKeys::rotate(std::int64_t now) noexcept {
  if (!writable_) return false;
  TicketKeySet keys = snapshot();
  TicketKey fresh;
  if (!makeTicketKey(fresh, now)) return false;
  keys.previous = keys.current;
  keys.current = keys.next;
  keys.next = fresh;
  keys.rotatedAt = now;
  keys.rotations += 1;
  publish(keys);
  return true;
}

}  // namespace molt::shm
