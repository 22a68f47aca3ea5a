// A generation's servers in shared memory: the table and state the master writes (read-only to
// workers), and the connection counts workers write.
//
// Zone kind 3 ("molt-server-state"), layout version 2 (see shm/zone.hpp for the header), written
// by the master only; workers map it read-only from a read-only descriptor:
//   64    ServerStateHeader {u32 backends, u32 reserved, u64 servers (rows in use), u64 capacity
//                            (rows), u64 names capacity (bytes), u64 names bytes (in use),
//                            u64 backends offset, u64 servers offset, u64 live offset,
//                            u64 names offset}
//         BackendRecord[backends], 24 bytes: {u32 name offset, u32 name length,
//                                             u64 first server, u64 server count}
//         ServerRecord[capacity], 32 bytes:  {u32 name offset, u16 name length, u16 weight,
//                                             u8 flags (1 disabled, 2 checked), u8 family,
//                                             u16 port, u8 address[16], u32 reserved}
//         ServerLive[capacity], 4 bytes:     {atomic u8 health (0 up, 1 down), atomic u8 admin
//                                             (0 ready, 1 drain, 2 maint), atomic u16 weight
//                                             override + 1 (0: the configured weight)}
//         names[names capacity]: the bytes of every backend and server name
//   Offsets are a function of (backends, capacity, names capacity) alone (ServerStateLayout):
//   a process attaching recomputes them and refuses a header that says otherwise.
//
// Zone kind 4 ("molt-server-load"), layout version 1, written by every worker:
//   64    atomic u32 connections[capacity]: open connections to each server, all workers
//
// Rows and names are sized for `capacity` servers: the runtime API appends rows past those of the
// file (spare room: max(65536, servers) rows, untouched pages costing nothing until used). All
// zero is the initial live state (up, ready, configured weight, no connections), so those pages
// are not touched until something changes (a server starts with the admin state its config gives:
// maint when configured disabled, or what a runtime server.set left it in). Offsets, not pointers.
// One pair of zones per generation: the whole instance holds one copy of each server (PSS),
// however many workers map it.
//
// Trust: a worker can write only the load zone. The master keeps the table's layout and row
// counts in its own memory and never reads back from shared memory what decides where it writes;
// what it reads from the load zone (connection counts) are numbers it only reports or waits on.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/address.hpp"
#include "common/config.hpp"
#include "shm/zone.hpp"

namespace molt::shm {

enum class ServerHealth : std::uint8_t { Up = 0, Down = 1 };
using ServerAdmin = common::ServerAdmin;  // the admin byte holds its value

struct ServerLive {
  std::atomic<std::uint8_t> health;
  std::atomic<std::uint8_t> admin;
  std::atomic<std::uint16_t> weightPlusOne;
};
static_assert(sizeof(ServerLive) == 4);

// A server as the table describes it (a view; names point into the zone).
struct ServerView {
  std::string_view name;
  common::SocketAddress address;
  unsigned weight;  // as configured
  bool disabled;    // as configured: it started in maintenance
  bool checked;
};

struct BackendView {
  std::string_view name;
  std::uint64_t first;  // index of its first server in the table
  std::uint64_t count;
};

// Where everything is in a table zone: fixed by (backends, capacity, namesCapacity).
struct ServerStateLayout {
  std::uint32_t backends = 0;
  std::uint64_t capacity = 0, namesCapacity = 0;
  std::uint64_t backendsOffset = 0, serversOffset = 0, liveOffset = 0, namesOffset = 0, size = 0;
  static ServerStateLayout of(std::uint32_t backends, std::uint64_t capacity,
                              std::uint64_t namesCapacity);
};

// Owns mappings of one generation's two zones. Built by the master from a Config (build),
// attached by workers from the descriptors of their handover (attach). Every index is checked
// against the layout: an index past it is a broken invariant (abort) in the master, and is read
// as "no such server" in a worker.
class ServerState {
 public:
  static constexpr std::uint32_t kVersion = 2;
  static constexpr std::uint32_t kLoadVersion = 1;

  // Master: zones holding every server of `config` (templates expanded). nullptr + `error`.
  static std::unique_ptr<ServerState> build(const common::Config& config, std::string& error);
  // Worker (tableAccess ReadOnly) or the master after exec (ReadWrite): checks both headers and
  // the table's layout, and maps the zones.
  static std::unique_ptr<ServerState> attach(common::UniqueFd table, common::UniqueFd load,
                                             Access tableAccess, std::string& error);

  std::uint32_t backendCount() const { return layout_.backends; }
  std::uint64_t serverCount() const;
  std::uint64_t capacity() const { return layout_.capacity; }
  BackendView backend(std::uint32_t index) const;
  ServerView server(std::uint64_t index) const;
  // The server's name only (cheaper than server()).
  std::string_view serverName(std::uint64_t index) const;
  ServerLive& live(std::uint64_t index) const;
  std::atomic<std::uint32_t>& connections(std::uint64_t index) const;
  // The weight in effect: the runtime override when set, else the configured one.
  unsigned weight(std::uint64_t index) const;
  // True when new traffic may go to the server: up, ready (not drain or maint), weight above 0.
  bool eligible(std::uint64_t index) const;
  // Master, runtime API: a row for a server added to the serving generation (workers learn its
  // index from the master). nullopt + `error` when the zone's room is used up.
  std::optional<std::uint64_t> appendServer(std::string_view name,
                                            const common::SocketAddress& address, unsigned weight,
                                            bool checked, ServerAdmin admin, std::string& error);
  // Room left for runtime additions: rows, and bytes of names.
  std::uint64_t spareRows() const { return layout_.capacity - servers_; }
  std::uint64_t spareNameBytes() const { return layout_.namesCapacity - namesBytes_; }
  // Index of backend `name`, or -1 (linear: a handful of backends per lookup at build time).
  long findBackend(std::string_view name) const;

  Zone& zone() { return table_; }
  Zone& loadZone() { return load_; }
  // Master: the descriptors a worker gets: the table read-only (reopened so), the load zone.
  common::UniqueFd tableForWorker() const;
  common::UniqueFd loadForWorker() const;
  // Worker: both mapped, the descriptors are of no further use.
  void dropDescriptors() noexcept;

 private:
  ServerState(Zone table, Zone load, ServerStateLayout layout)
      : table_(std::move(table)), load_(std::move(load)), layout_(layout) {}
  template <class T>
  T* at(std::uint64_t offset) const {
    return reinterpret_cast<T*>(table_.data() + offset);
  }
  bool hasRow(std::uint64_t index) const { return index < layout_.capacity; }

  Zone table_;
  Zone load_;
  ServerStateLayout layout_;
  // Rows and name bytes in use. The master's own count is authoritative (it alone appends); a
  // worker reads the header's, which only the master writes.
  std::uint64_t servers_ = 0, namesBytes_ = 0;
  bool master_ = false;
};

}  // namespace molt::shm
