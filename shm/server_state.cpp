#include "shm/server_state.hpp"

#include <arpa/inet.h>

#include <fcntl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace molt::shm {
namespace {

struct ServerStateHeader {
  std::uint32_t backends, reserved0;
  std::uint64_t servers, capacity, namesCapacity, namesBytes, backendsOffset, serversOffset,
      liveOffset, namesOffset;
};

// Room for servers the runtime API adds to a serving generation: at least this many rows, and
// as many as the config holds when it holds more, each with this many name bytes on average.
// Untouched memfd pages cost nothing, so the room is only address space until used.
constexpr std::uint64_t kMinSpareRows = 65536;
constexpr std::uint64_t kSpareNameBytes = 64;

struct BackendRecord {
  std::uint32_t nameOffset, nameLength;
  std::uint64_t first, count;
};
static_assert(sizeof(BackendRecord) == 24);

struct ServerRecord {
  std::uint32_t nameOffset;
  std::uint16_t nameLength, weight;
  std::uint8_t flags, family;
  std::uint16_t port;
  std::uint8_t address[16];
  std::uint32_t reserved;
};
static_assert(sizeof(ServerRecord) == 32);

constexpr std::uint8_t kDisabled = 1, kChecked = 2;

std::uint64_t align(std::uint64_t n, std::uint64_t to) {
  return (n + to - 1) / to * to;
}

void encodeAddress(const common::SocketAddress& a, ServerRecord& r) {
  r.family = static_cast<std::uint8_t>(a.family());
  r.port = a.port();
  if (a.family() == AF_INET)
    std::memcpy(r.address, &reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr, 4);
  else
    std::memcpy(r.address, &a.storage.sin6_addr, 16);
}

common::SocketAddress decodeAddress(const ServerRecord& r) {
  common::SocketAddress a;
  if (r.family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    v4->sin_family = AF_INET;
    std::memcpy(&v4->sin_addr, r.address, 4);
    a.length = sizeof(sockaddr_in);
  } else {
    a.storage.sin6_family = AF_INET6;
    std::memcpy(&a.storage.sin6_addr, r.address, 16);
    a.length = sizeof(sockaddr_in6);
  }
  a.setPort(r.port);
  return a;
}

}  // namespace

ServerStateLayout ServerStateLayout::of(std::uint32_t backends, std::uint64_t capacity,
                                        std::uint64_t namesCapacity) {
  ServerStateLayout l;
  l.backends = backends;
  l.capacity = capacity;
  l.namesCapacity = namesCapacity;
  l.backendsOffset = sizeof(ZoneHeader) + sizeof(ServerStateHeader);
  l.serversOffset = align(l.backendsOffset + backends * sizeof(BackendRecord), 64);
  l.liveOffset = align(l.serversOffset + capacity * sizeof(ServerRecord), 4096);
  l.namesOffset = align(l.liveOffset + capacity * sizeof(ServerLive), 64);
  l.size = align(l.namesOffset + namesCapacity, 4096);
  return l;
}

namespace {

std::uint64_t loadZoneBytes(std::uint64_t capacity) {
  return align(sizeof(ZoneHeader) + capacity * sizeof(std::uint32_t), 4096);
}

// The largest table a zone may describe: a header claiming more is refused before any offset
// is computed from it (no overflow).
constexpr std::uint64_t kMaxRows = std::uint64_t{1} << 32;
constexpr std::uint64_t kMaxNameBytes = std::uint64_t{1} << 36;

}  // namespace

std::unique_ptr<ServerState> ServerState::build(const common::Config& config, std::string& error) {
  std::uint64_t servers = 0, names = 0;
  for (const auto& b : config.backends) {
    names += b.name.size();
    servers += b.servers.size();
    for (const auto& s : b.servers) names += s.name.size();
  }
  const std::uint64_t spare = std::max(kMinSpareRows, servers);
  ServerStateLayout layout =
      ServerStateLayout::of(static_cast<std::uint32_t>(config.backends.size()), servers + spare,
                            names + spare * kSpareNameBytes);
  auto table = Zone::create(ZoneKind::ServerState, kVersion, layout.size, error);
  if (!table) return nullptr;
  auto load =
      Zone::create(ZoneKind::ServerLoad, kLoadVersion, loadZoneBytes(layout.capacity), error);
  if (!load) return nullptr;
  std::unique_ptr<ServerState> state(new ServerState(std::move(*table), std::move(*load), layout));
  state->master_ = true;
  auto* header = state->at<ServerStateHeader>(sizeof(ZoneHeader));
  *header = {layout.backends,
             0,
             servers,
             layout.capacity,
             layout.namesCapacity,
             names,
             layout.backendsOffset,
             layout.serversOffset,
             layout.liveOffset,
             layout.namesOffset};
  char* nameBytes = state->at<char>(layout.namesOffset);
  std::uint64_t nameAt = 0, serverAt = 0;
  auto addName = [&](std::string_view name) {
    std::memcpy(nameBytes + nameAt, name.data(), name.size());
    nameAt += name.size();
    return static_cast<std::uint32_t>(nameAt - name.size());
  };
  auto* backendRecords = state->at<BackendRecord>(layout.backendsOffset);
  auto* serverRecords = state->at<ServerRecord>(layout.serversOffset);
  for (std::uint64_t i = 0; i < layout.backends; ++i) {
    const auto& b = config.backends[i];
    backendRecords[i] = {addName(b.name), static_cast<std::uint32_t>(b.name.size()), serverAt,
                         b.servers.size()};
    for (const auto& s : b.servers) {
      ServerRecord& r = serverRecords[serverAt++];
      r.nameOffset = addName(s.name);
      r.nameLength = static_cast<std::uint16_t>(s.name.size());
      r.weight = static_cast<std::uint16_t>(s.weight);
      r.flags = static_cast<std::uint8_t>((s.disabled ? kDisabled : 0) | (s.check ? kChecked : 0));
      encodeAddress(s.address, r);
      // Only non-ready servers write their live record: the others' pages stay untouched.
      if (s.admin != ServerAdmin::Ready)
        state->live(serverAt - 1)
            .admin.store(static_cast<std::uint8_t>(s.admin), std::memory_order_relaxed);
    }
  }
  state->servers_ = servers;
  state->namesBytes_ = names;
  return state;
}

std::unique_ptr<ServerState> ServerState::attach(common::UniqueFd tableFd, common::UniqueFd loadFd,
                                                 Access tableAccess, std::string& error) {
  auto table =
      Zone::open(std::move(tableFd), ZoneKind::ServerState, kVersion, 0, tableAccess, error);
  if (!table) return nullptr;
  const auto& h = *reinterpret_cast<const ServerStateHeader*>(table->data() + sizeof(ZoneHeader));
  // Copied once: what the header says afterwards changes nothing here.
  ServerStateHeader seen;
  std::memcpy(&seen, &h, sizeof seen);
  if (seen.capacity > kMaxRows || seen.namesCapacity > kMaxNameBytes ||
      seen.servers > seen.capacity || seen.namesBytes > seen.namesCapacity) {
    error = "server-state zone: header out of bounds";
    return nullptr;
  }
  ServerStateLayout layout =
      ServerStateLayout::of(seen.backends, seen.capacity, seen.namesCapacity);
  if (layout.size != table->size() || layout.backendsOffset != seen.backendsOffset ||
      layout.serversOffset != seen.serversOffset || layout.liveOffset != seen.liveOffset ||
      layout.namesOffset != seen.namesOffset) {
    error = "server-state zone: the header's layout does not match its size";
    return nullptr;
  }
  auto load = Zone::open(std::move(loadFd), ZoneKind::ServerLoad, kLoadVersion,
                         loadZoneBytes(layout.capacity), Access::ReadWrite, error);
  if (!load) return nullptr;
  std::unique_ptr<ServerState> state(new ServerState(std::move(*table), std::move(*load), layout));
  state->master_ = tableAccess == Access::ReadWrite;
  state->servers_ = seen.servers;
  state->namesBytes_ = seen.namesBytes;
  // Every backend record must stay inside the table: checked once, here.
  for (std::uint32_t i = 0; i < layout.backends; ++i) {
    const auto& r = state->at<BackendRecord>(layout.backendsOffset)[i];
    if (r.first > layout.capacity || r.count > layout.capacity - r.first ||
        std::uint64_t{r.nameOffset} + r.nameLength > layout.namesCapacity) {
      error = "server-state zone: backend " + std::to_string(i) + " out of bounds";
      return nullptr;
    }
  }
  return state;
}

common::UniqueFd ServerState::tableForWorker() const {
  return table_.readOnlyDescriptor();
}

common::UniqueFd ServerState::loadForWorker() const {
  return common::UniqueFd(fcntl(load_.fd(), F_DUPFD_CLOEXEC, 0));
}

void ServerState::dropDescriptors() noexcept {
  table_.dropDescriptor();
  load_.dropDescriptor();
}

std::optional<std::uint64_t> ServerState::appendServer(std::string_view name,
                                                       const common::SocketAddress& address,
                                                       unsigned weight, bool checked,
                                                       ServerAdmin admin, std::string& error) {
  if (!master_) {
    error = "the server-state zone is read-only here";
    return std::nullopt;
  }
  if (servers_ >= layout_.capacity) {
    error = "the generation's server-state zone is full (" + std::to_string(servers_) +
            " servers); a reload makes room";
    return std::nullopt;
  }
  if (name.size() > spareNameBytes()) {
    error = "the generation's server-state zone has no room left for names; a reload makes room";
    return std::nullopt;
  }
  std::uint64_t index = servers_;
  ServerRecord& r = at<ServerRecord>(layout_.serversOffset)[index];
  r.nameOffset = static_cast<std::uint32_t>(namesBytes_);
  r.nameLength = static_cast<std::uint16_t>(name.size());
  std::memcpy(at<char>(layout_.namesOffset) + namesBytes_, name.data(), name.size());
  namesBytes_ += name.size();
  r.weight = static_cast<std::uint16_t>(weight);
  r.flags = static_cast<std::uint8_t>((admin == ServerAdmin::Maint ? kDisabled : 0) |
                                      (checked ? kChecked : 0));
  encodeAddress(address, r);
  live(index).admin.store(static_cast<std::uint8_t>(admin), std::memory_order_relaxed);
  servers_ = index + 1;
  // For workers, which learn a row's index from the master; the master never reads these back.
  auto* header = at<ServerStateHeader>(sizeof(ZoneHeader));
  header->namesBytes = namesBytes_;
  __atomic_store_n(&header->servers, servers_, __ATOMIC_RELEASE);
  return index;
}

std::uint64_t ServerState::serverCount() const {
  if (master_) return servers_;
  std::uint64_t n =
      __atomic_load_n(&at<ServerStateHeader>(sizeof(ZoneHeader))->servers, __ATOMIC_ACQUIRE);
  return std::min(n, layout_.capacity);
}

BackendView ServerState::backend(std::uint32_t index) const {
  if (index >= layout_.backends) return {{}, 0, 0};
  const auto& r = at<BackendRecord>(layout_.backendsOffset)[index];
  return {{at<char>(layout_.namesOffset) + r.nameOffset, r.nameLength}, r.first, r.count};
}

std::string_view ServerState::serverName(std::uint64_t index) const {
  if (!hasRow(index)) return {};
  const auto& r = at<ServerRecord>(layout_.serversOffset)[index];
  if (std::uint64_t{r.nameOffset} + r.nameLength > layout_.namesCapacity) return {};
  return {at<char>(layout_.namesOffset) + r.nameOffset, r.nameLength};
}

ServerView ServerState::server(std::uint64_t index) const {
  if (!hasRow(index)) return {{}, {}, 0, true, false};
  const auto& r = at<ServerRecord>(layout_.serversOffset)[index];
  return {serverName(index), decodeAddress(r), r.weight, (r.flags & kDisabled) != 0,
          (r.flags & kChecked) != 0};
}

ServerLive& ServerState::live(std::uint64_t index) const {
  if (!hasRow(index)) {
    // Indices come from the generation's own config (master) or from the master (workers check
    // them first): one past the table is a bug, not input.
    std::fprintf(stderr, "molt: server-state row %llu past capacity %llu\n",
                 static_cast<unsigned long long>(index),
                 static_cast<unsigned long long>(layout_.capacity));
    std::abort();
  }
  return at<ServerLive>(layout_.liveOffset)[index];
}

std::atomic<std::uint32_t>& ServerState::connections(std::uint64_t index) const {
  if (!hasRow(index)) live(index);  // aborts, saying why
  return reinterpret_cast<std::atomic<std::uint32_t>*>(load_.data() + sizeof(ZoneHeader))[index];
}

unsigned ServerState::weight(std::uint64_t index) const {
  std::uint16_t override = live(index).weightPlusOne.load(std::memory_order_relaxed);
  if (override) return override - 1u;
  return at<ServerRecord>(layout_.serversOffset)[index].weight;
}

bool ServerState::eligible(std::uint64_t index) const {
  if (!hasRow(index)) return false;
  const ServerLive& l = live(index);
  return l.health.load(std::memory_order_relaxed) == static_cast<std::uint8_t>(ServerHealth::Up) &&
         l.admin.load(std::memory_order_relaxed) == static_cast<std::uint8_t>(ServerAdmin::Ready) &&
         weight(index) > 0;
}

long ServerState::findBackend(std::string_view name) const {
  for (std::uint32_t i = 0; i < backendCount(); ++i)
    if (backend(i).name == name) return static_cast<long>(i);
  return -1;
}

}  // namespace molt::shm
