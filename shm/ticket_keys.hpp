// TLS session ticket keys shared by every worker, rotated by the master.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/unique_fd.hpp"
#include "shm/zone.hpp"

namespace molt::shm {

// One ticket key: its 16-byte name travels in every ticket it encrypts (AES-256-CBC +
// HMAC-SHA256, what OpenSSL's ticket callback uses).
struct TicketKey {
  std::array<std::uint8_t, 16> name;
  std::array<std::uint8_t, 32> aesKey;
  std::array<std::uint8_t, 32> hmacKey;
  std::int64_t created;  // unix seconds
};

// Encrypt with current; decrypt with any, asking clients holding previous or next to renew.
struct TicketKeySet {
  TicketKey previous, current, next;
  std::int64_t rotatedAt;   // unix seconds of the last rotate() (or of the zone's creation)
  std::uint64_t rotations;  // rotate() calls since the zone was created
};

// The ticket-keys zone. One writer, the master (create, rotate); any number of readers
// (workers, snapshot) that never wait on the writer: a seqcount latch keeps two copies, so a
// master killed mid-rotation leaves one intact. Owns its zone: destroying it unmaps.
class TicketKeys {
 public:
  static constexpr std::uint32_t kLayoutVersion = 1;
  static constexpr std::uint64_t kZoneBytes = 4096;
  static constexpr std::size_t kWords = sizeof(TicketKeySet) / sizeof(std::uint64_t);

  // The zone's payload (see shm/zone.hpp), public so that tests can play a dying writer.
  struct Layout {
    std::uint64_t sequence;
    std::uint64_t reserved;
    std::uint64_t copies[2][kWords];
  };

  // Master: a new zone holding three fresh random keys. nullptr + `error` on failure.
  static std::unique_ptr<TicketKeys> create(std::string& error,
                                            std::int64_t now = std::time(nullptr));
  // Workers (Access::ReadOnly) or the master after exec (Access::ReadWrite): attaches to the
  // zone in `fd`. nullptr + `error` when it is not a ticket-keys zone of this layout.
  static std::unique_ptr<TicketKeys> attach(common::UniqueFd fd, Access access, std::string& error);

  // Master only, on its rotation timer: previous <- current, current <- next, next <- fresh
  // (RAND_bytes). False, with nothing changed, when randomness failed or the zone is read-only.
  bool rotate(std::int64_t now = std::time(nullptr)) noexcept;
  // Master only: publishes `keys` (the fleet's ring) as they are. False when read-only.
  bool replace(const TicketKeySet& keys) noexcept;
  // Any process: a consistent copy of the keys, without locking.
  TicketKeySet snapshot() const noexcept;

  Zone& zone() { return zone_; }
  Layout& layout() const;

 private:
  TicketKeys(Zone zone, bool writable) : zone_(std::move(zone)), writable_(writable) {}
  void publish(const TicketKeySet& keys) noexcept;

  Zone zone_;
  bool writable_;
};

// A fresh random key created at `now`; false when RAND_bytes failed.
bool makeTicketKey(TicketKey& key, std::int64_t now) noexcept;
// `keys` rotated once at `now`: previous <- current, current <- next, next <- fresh. False when
// RAND_bytes failed.
bool rotateTicketKeys(TicketKeySet& keys, std::int64_t now) noexcept;

// The ring's form outside the zone (the fleet's copy in Redis): "MOLTRNG1", rotatedAt and
// rotations (little-endian 64-bit), then previous, current and next, each name, AES key, HMAC key
// and created time; kTicketRingBytes in all.
inline constexpr std::size_t kTicketRingBytes = 8 + 8 + 8 + 3 * (16 + 32 + 32 + 8);
std::string encodeTicketRing(const TicketKeySet& keys);
// Reads what encodeTicketRing wrote, from a source that is not trusted: nullopt + `error` when
// the length, the magic, the times (`now` is the reader's clock) or the key names do not check
// out.
std::optional<TicketKeySet> decodeTicketRing(std::string_view bytes, std::int64_t now,
                                             std::string& error);
// The same keys in the same slots (what a ring's copies are compared by).
bool sameTicketKeys(const TicketKeySet& a, const TicketKeySet& b) noexcept;

}  // namespace molt::shm
