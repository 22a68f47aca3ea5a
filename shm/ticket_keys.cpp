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
  if (!rotateTicketKeys(keys, now)) return false;
  publish(keys);
  return true;
}

bool TicketKeys::replace(const TicketKeySet& keys) noexcept {
  if (!writable_) return false;
  publish(keys);
  return true;
}

bool rotateTicketKeys(TicketKeySet& keys, std::int64_t now) noexcept {
  TicketKey fresh;
  if (!makeTicketKey(fresh, now)) return false;
  keys.previous = keys.current;
  keys.current = keys.next;
  keys.next = fresh;
  keys.rotatedAt = now;
  keys.rotations += 1;
  return true;
}

namespace {

constexpr std::string_view kRingMagic = "MOLTRNG1";

void put64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get64(std::string_view& in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(8);
  return v;
}

template <std::size_t N>
void getBytes(std::string_view& in, std::array<std::uint8_t, N>& out) {
  std::memcpy(out.data(), in.data(), N);
  in.remove_prefix(N);
}

}  // namespace

std::string encodeTicketRing(const TicketKeySet& keys) {
  std::string out(kRingMagic);
  put64(out, static_cast<std::uint64_t>(keys.rotatedAt));
  put64(out, keys.rotations);
  for (const TicketKey* key : {&keys.previous, &keys.current, &keys.next}) {
    out.append(reinterpret_cast<const char*>(key->name.data()), key->name.size());
    out.append(reinterpret_cast<const char*>(key->aesKey.data()), key->aesKey.size());
    out.append(reinterpret_cast<const char*>(key->hmacKey.data()), key->hmacKey.size());
    put64(out, static_cast<std::uint64_t>(key->created));
  }
  return out;
}

// Times must be positive and not ahead of the reader's clock by more than a day (clocks of a
// fleet differ; a ring from far in the future would stop rotation for as long).
std::optional<TicketKeySet> decodeTicketRing(std::string_view in, std::int64_t now,
                                             std::string& error) {
  constexpr std::int64_t kSkew = 24 * 3600;
  if (in.size() != kTicketRingBytes) {
    error = "ticket ring: " + std::to_string(in.size()) + " bytes, expected " +
            std::to_string(kTicketRingBytes);
    return std::nullopt;
  }
  if (in.substr(0, kRingMagic.size()) != kRingMagic) {
    error = "ticket ring: not a molt ticket ring (magic)";
    return std::nullopt;
  }
  in.remove_prefix(kRingMagic.size());
  TicketKeySet keys{};
  keys.rotatedAt = static_cast<std::int64_t>(get64(in));
  keys.rotations = get64(in);
  for (TicketKey* key : {&keys.previous, &keys.current, &keys.next}) {
    getBytes(in, key->name);
    getBytes(in, key->aesKey);
    getBytes(in, key->hmacKey);
    key->created = static_cast<std::int64_t>(get64(in));
    if (key->created <= 0 || key->created > now + kSkew) {
      error = "ticket ring: a key's creation time is out of range";
      return std::nullopt;
    }
  }
  if (keys.rotatedAt <= 0 || keys.rotatedAt > now + kSkew) {
    error = "ticket ring: rotation time out of range";
    return std::nullopt;
  }
  if (keys.previous.name == keys.current.name || keys.current.name == keys.next.name ||
      keys.previous.name == keys.next.name) {
    error = "ticket ring: two keys share a name";
    return std::nullopt;
  }
  return keys;
}

bool sameTicketKeys(const TicketKeySet& a, const TicketKeySet& b) noexcept {
  auto same = [](const TicketKey& x, const TicketKey& y) {
    return x.name == y.name && x.aesKey == y.aesKey && x.hmacKey == y.hmacKey;
  };
  return same(a.previous, b.previous) && same(a.current, b.current) && same(a.next, b.next);
}

}  // namespace molt::shm
