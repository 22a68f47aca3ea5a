// A generation's servers in one zone: the table the master builds once, and live state.
//
// Zone kind 3 ("molt-server-state"), layout version 1 (see shm/zone.hpp for the header):
//   64    ServerStateHeader {u32 backends, u32 reserved, u64 servers, u64 backends offset,
//                            u64 servers offset, u64 live offset, u64 names offset,
//                            u64 names bytes, u64 capacity (rows; 0 = servers)}
//         BackendRecord[backends], 24 bytes: {u32 name offset, u32 name length,
//                                             u64 first server, u64 server count}
//         ServerRecord[servers], 32 bytes:   {u32 name offset, u16 name length, u16 weight,
//                                             u8 flags (1 disabled, 2 checked), u8 family,
//                                             u16 port, u8 address[16], u32 reserved}
//         ServerLive[servers], 8 bytes:      {atomic u8 health (0 up, 1 down), atomic u8 admin
//                                             (0 ready, 1 drain, 2 maint), atomic u16 weight
//                                             override + 1 (0: the configured weight),
//                                             atomic u32 connections (all workers)}
//         names: the bytes of every backend and server name
// Rows and names are sized for `capacity` servers: the runtime API appends rows past `servers`
// (spare room: max(65536, servers) rows, untouched pages costing nothing until used).
// The table is written by the master before any worker sees the zone and rows never change; the
// live state is written by the master (health, admin state, weight) and by workers (connection
// counts, relaxed atomics). All zero is the initial live state: up, ready, configured weight, no
// connections, so those pages are not touched until something changes (a server starts with the
// admin state its config gives: maint when configured disabled, or what a runtime server.set
// left it in). Offsets, not pointers.
// One zone per generation: the whole instance holds one copy of each server (PSS), however many
// workers map it.
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
  std::atomic<std::uint32_t> connections;
};
static_assert(sizeof(ServerLive) == 8);

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

// Owns a mapping of one generation's server-state zone. Built by the master from a Config
// (build), attached by workers from the fd in their handover (attach). Reads of the table are
// lock-free and safe from any process; live state is atomics.
class ServerState {
 public:
  static constexpr std::uint32_t kVersion = 1;

  // Master: a zone holding every server of `config` (templates expanded). nullptr + `error`.
  static std::unique_ptr<ServerState> build(const common::Config& config, std::string& error);
  // Worker (or the master after exec): checks the header and maps the zone.
  static std::unique_ptr<ServerState> attach(common::UniqueFd fd, std::string& error);

  std::uint32_t backendCount() const;
  std::uint64_t serverCount() const;
  BackendView backend(std::uint32_t index) const;
  ServerView server(std::uint64_t index) const;
  // The server's name only (cheaper than server()).
  std::string_view serverName(std::uint64_t index) const;
  ServerLive& live(std::uint64_t index) const;
  // The weight in effect: the runtime override when set, else the configured one.
  unsigned weight(std::uint64_t index) const;
  // True when new traffic may go to the server: up, ready (not drain or maint), weight above 0.
  bool eligible(std::uint64_t index) const;
  // Master, runtime API: a row for a server added to the serving generation (workers learn its
  // index from the master). nullopt + `error` when the zone's room is used up.
  std::optional<std::uint64_t> appendServer(std::string_view name,
                                            const common::SocketAddress& address, unsigned weight,
                                            bool checked, ServerAdmin admin, std::string& error);
  std::uint64_t spareRows() const;
  // Index of backend `name`, or -1 (linear: a handful of backends per lookup at build time).
  long findBackend(std::string_view name) const;
  Zone& zone() { return zone_; }

 private:
  explicit ServerState(Zone zone) : zone_(std::move(zone)) {}
  template <class T>
  T* at(std::uint64_t offset) const {
    return reinterpret_cast<T*>(zone_.data() + offset);
  }

  Zone zone_;
};

}  // namespace molt::shm
