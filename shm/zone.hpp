// Shared-memory zones: memfds created by the master, mapped by workers.
//
// Protocol description (the only one; docs/tls.md explains it for operators):
//
//   A zone is a memfd named "molt-<kind>" (pmap shows "memfd:molt-session-cache"), created,
//   sized (ftruncate: sparse, no page is allocated until written) and sealed against resizing by
//   the master. It reaches workers over their control socket (SCM_RIGHTS) and crosses the
//   master's exec on binary upgrade. All integers are native-endian; offsets are from the zone's
//   start, never pointers, so every process may map a zone at a different address.
//
//   offset 0, 64 bytes: ZoneHeader
//     char     magic[8]     "MOLTZONE"
//     u32      version      layout version of this kind's payload (bumped on any change below)
//     u32      kind         ZoneKind: 1 session cache, 2 ticket keys, 3 server state
//     u64      size         zone bytes, equal to the memfd's size
//     i64      created      unix seconds
//     u8       reserved[32]
//   A process opening a zone checks all five against what it expects and refuses the zone,
//   loudly, on any difference: a new binary never reads an old layout by mistake.
//
//   kind 1, session cache (shm/session_cache.cpp, shm/cache_shard.cpp), version 1:
//     64    SessionCacheHeader  {u32 shards (power of two, at most 64), u32 buckets per shard
//                                (power of two, one per KiB of shard), u64 shard bytes,
//                                u64 first shard offset, u64 reserved[5]}
//     128   ShardControl[shards], 128 bytes each:
//             pthread_mutex_t  robust, process-shared: guards the shard's region
//             atomic u32 built 0: the region's allocator is not laid out (fresh or wiped)
//             u32, u64         reserved
//             atomic u64       entries, bytes, hits, misses, stores, evictions, expirations,
//                              lock recoveries, lock failures (written under the lock, read
//                              without it)
//     page-aligned, shard bytes each: shard regions, each
//       index   page-rounded: {u64 LRU head, u64 LRU tail, u64 reserved[6],
//               u64 bucket heads[buckets]}; all zero is the empty index, so a fresh or
//               hole-punched region needs no initialisation and a bucket page is touched only
//               when an entry is linked into it
//       entries the rest: a Boost.Interprocess managed_external_buffer (rbtree_best_fit with
//               null_mutex_family, iset_index), laid out by the first store; each entry
//               {u64 hash, u64 chain next, u64 LRU prev, u64 LRU next, i64 expires (ms of
//               CLOCK_MONOTONIC), u32 value bytes, u8 key bytes, u8 key[32], value}
//       Links are offsets from the region's start (0: none).
//
//   kind 2, ticket keys (shm/ticket_keys.cpp), version 1, 4096 bytes, written only by the
//   master:
//     64    atomic u64 sequence   seqcount latch: odd while copy 0 is written, even while
//                                 copy 1 is; readers read copy (sequence & 1) and retry if the
//                                 sequence moved
//     72    u64 reserved
//     80    copy 0, 280 bytes: previous, current, next key {u8 name[16], u8 aes[32],
//                              u8 hmac[32], i64 created}, i64 rotated at, u64 rotations
//     360   copy 1, the same
//
//   kind 3, server state, and kind 4, server load (shm/server_state.hpp, which holds their
//   layouts): one pair per generation, the server table plus the state the master publishes
//   (read-only to workers), and the connection counts workers write.
//
//   kind 5, worker stats (shm/worker_stats.hpp, which holds its layout): one per worker process,
//   its counters, written by that worker alone and read by the master.
//
//   Who may write: the master alone writes the ticket keys and the server state; workers get
//   those zones through a descriptor reopened read-only (readOnlyDescriptor), map them read-only
//   and close the descriptor at once, so no worker can make a writable mapping of them. Workers
//   write the session cache and the server load; the master keeps every layout value (sizes,
//   offsets, counts) in its own memory, fixed when it created the zone, and bounds-checks every
//   index or link it reads from shared memory.
//
//   Crash semantics: a process SIGKILLed while holding a shard lock costs that shard's contents
//   (the next locker gets EOWNERDEAD and wipes it); a master killed mid-rotation leaves one
//   intact copy of the keys, which readers keep using. Nothing waits on a dead process, and a
//   live but stopped lock holder costs the others at most SessionCache::kLockTimeout per call
//   (then a cache miss).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/unique_fd.hpp"
#include "shm/mapping.hpp"

namespace molt::shm {

enum class ZoneKind : std::uint32_t {
  SessionCache = 1,
  TicketKeys = 2,
  ServerState = 3,
  ServerLoad = 4,
  WorkerStats = 5
};

// "session-cache", "ticket-keys", "server-state", "server-load": the memfd is named "molt-" +
// this.
std::string_view zoneKindName(ZoneKind kind);

struct ZoneHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t kind;
  std::uint64_t size;
  std::int64_t created;
  std::uint8_t reserved[32];
};
static_assert(sizeof(ZoneHeader) == 64);

// One zone mapped in this process: owns the memfd and the mapping. Created by the master
// (create), opened by workers from a received fd (open). Move-only; not thread-safe.
class Zone {
 public:
  static constexpr char kMagic[8] = {'M', 'O', 'L', 'T', 'Z', 'O', 'N', 'E'};

  // Master: a new memfd "molt-<kind>" of `size` bytes, sealed against resizing, mapped
  // read-write, with its header written (the only page touched). nullopt + `error` on failure.
  static std::optional<Zone> create(ZoneKind kind, std::uint32_t version, std::uint64_t size,
                                    std::string& error);
  // Worker, or the master after exec: maps `fd` and checks its header against `kind`,
  // `version` and `size` (0: any size the header and the memfd agree on). nullopt + `error`
  // naming the mismatch ("session-cache zone: layout version 2, expected 1").
  static std::optional<Zone> open(common::UniqueFd fd, ZoneKind kind, std::uint32_t version,
                                  std::uint64_t size, Access access, std::string& error);

  Zone(Zone&&) noexcept = default;
  Zone& operator=(Zone&&) noexcept = default;

  // The memfd, for the master to send to workers (it stays owned by the zone).
  int fd() const { return fd_.get(); }
  ZoneKind kind() const { return kind_; }
  std::uint64_t size() const { return mapping_.size(); }
  bool mapped() const { return static_cast<bool>(mapping_); }
  const ZoneHeader& header() const { return *reinterpret_cast<const ZoneHeader*>(data()); }
  char* data() const { return mapping_.data(); }

  // The memfd opened again, read-only (through /proc/self/fd): a descriptor from which no
  // writable mapping can be made. Invalid (and `errno` set) when it cannot be opened.
  common::UniqueFd readOnlyDescriptor() const;
  // Closes the descriptor but keeps the mapping: a worker needs only the pages, and holds no
  // descriptor it does not use. fd() is -1 afterwards.
  void dropDescriptor() noexcept { fd_.reset(); }
  // Unmaps and closes: this process stops using the zone (a draining worker, or the master
  // dropping a zone no generation uses). The pages go when the last process lets go.
  void release() noexcept;
  // Frees the pages behind [offset, offset + length) for every process that maps the zone
  // (they read back as zeros). For the session cache wiping a shard, and for an owner that
  // must keep the fd (binary-upgrade inventory) but not the contents. Without a descriptor
  // (dropDescriptor) it uses MADV_REMOVE on the mapping. Returns 0 or -errno.
  int punchHole(std::uint64_t offset, std::uint64_t length) noexcept;

 private:
  Zone(common::UniqueFd fd, Mapping mapping, ZoneKind kind)
      : fd_(std::move(fd)), mapping_(std::move(mapping)), kind_(kind) {}

  common::UniqueFd fd_;
  Mapping mapping_;
  ZoneKind kind_;
};

}  // namespace molt::shm
