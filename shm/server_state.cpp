#include "shm/server_state.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace molt::shm {
namespace {

struct ServerStateHeader {
  std::uint32_t backends, reserved0;
  std::uint64_t servers, backendsOffset, serversOffset, liveOffset, namesOffset, namesBytes,
      capacity;  // rows the zone has room for (0 in zones of older builds: `servers`)
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

std::unique_ptr<ServerState> ServerState::build(const common::Config& config, std::string& error) {
  std::uint64_t servers = 0, names = 0;
  for (const auto& b : config.backends) {
    names += b.name.size();
    servers += b.servers.size();
    for (const auto& s : b.servers) names += s.name.size();
  }
  const std::uint64_t backends = config.backends.size();
  const std::uint64_t spare = std::max(kMinSpareRows, servers);
  const std::uint64_t capacity = servers + spare;
  std::uint64_t backendsOffset = sizeof(ZoneHeader) + sizeof(ServerStateHeader);
  std::uint64_t serversOffset = align(backendsOffset + backends * sizeof(BackendRecord), 64);
  std::uint64_t liveOffset = align(serversOffset + capacity * sizeof(ServerRecord), 4096);
  std::uint64_t namesOffset = align(liveOffset + capacity * sizeof(ServerLive), 64);
  std::uint64_t size = align(namesOffset + names + spare * kSpareNameBytes, 4096);
  auto zone = Zone::create(ZoneKind::ServerState, kVersion, size, error);
  if (!zone) return nullptr;
  std::unique_ptr<ServerState> state(new ServerState(std::move(*zone)));
  auto* header = state->at<ServerStateHeader>(sizeof(ZoneHeader));
  *header = {static_cast<std::uint32_t>(backends),
             0,
             servers,
             backendsOffset,
             serversOffset,
             liveOffset,
             namesOffset,
             names,
             capacity};
  char* nameBytes = state->at<char>(namesOffset);
  std::uint64_t nameAt = 0, serverAt = 0;
  auto addName = [&](std::string_view name) {
    std::memcpy(nameBytes + nameAt, name.data(), name.size());
    nameAt += name.size();
    return static_cast<std::uint32_t>(nameAt - name.size());
  };
  auto* backendRecords = state->at<BackendRecord>(backendsOffset);
  auto* serverRecords = state->at<ServerRecord>(serversOffset);
  for (std::uint64_t i = 0; i < backends; ++i) {
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
  return state;
}

std::unique_ptr<ServerState> ServerState::attach(common::UniqueFd fd, std::string& error) {
  auto zone =
      Zone::open(std::move(fd), ZoneKind::ServerState, kVersion, 0, Access::ReadWrite, error);
  if (!zone) return nullptr;
  return std::unique_ptr<ServerState>(new ServerState(std::move(*zone)));
}

std::uint64_t ServerState::spareRows() const {
  const auto* h = at<ServerStateHeader>(sizeof(ZoneHeader));
  return h->capacity > h->servers ? h->capacity - h->servers : 0;
}

std::optional<std::uint64_t> ServerState::appendServer(std::string_view name,
                                                       const common::SocketAddress& address,
                                                       unsigned weight, bool checked,
                                                       ServerAdmin admin, std::string& error) {
  auto* h = at<ServerStateHeader>(sizeof(ZoneHeader));
  if (h->capacity <= h->servers) {
    error = "the generation's server-state zone is full (" + std::to_string(h->servers) +
            " servers); a reload makes room";
    return std::nullopt;
  }
  if (h->namesOffset + h->namesBytes + name.size() > zone_.size()) {
    error = "the generation's server-state zone has no room left for names; a reload makes room";
    return std::nullopt;
  }
  std::uint64_t index = h->servers;
  ServerRecord& r = at<ServerRecord>(h->serversOffset)[index];
  r.nameOffset = static_cast<std::uint32_t>(h->namesBytes);
  r.nameLength = static_cast<std::uint16_t>(name.size());
  std::memcpy(at<char>(h->namesOffset) + h->namesBytes, name.data(), name.size());
  h->namesBytes += name.size();
  r.weight = static_cast<std::uint16_t>(weight);
  r.flags = static_cast<std::uint8_t>((admin == ServerAdmin::Maint ? kDisabled : 0) |
                                      (checked ? kChecked : 0));
  encodeAddress(address, r);
  live(index).admin.store(static_cast<std::uint8_t>(admin), std::memory_order_relaxed);
  h->servers = index + 1;
  return index;
}

std::uint32_t ServerState::backendCount() const {
  return at<ServerStateHeader>(sizeof(ZoneHeader))->backends;
}

std::uint64_t ServerState::serverCount() const {
  return at<ServerStateHeader>(sizeof(ZoneHeader))->servers;
}

BackendView ServerState::backend(std::uint32_t index) const {
  const auto* h = at<ServerStateHeader>(sizeof(ZoneHeader));
  const auto& r = at<BackendRecord>(h->backendsOffset)[index];
  return {{at<char>(h->namesOffset) + r.nameOffset, r.nameLength}, r.first, r.count};
}

std::string_view ServerState::serverName(std::uint64_t index) const {
  const auto* h = at<ServerStateHeader>(sizeof(ZoneHeader));
  const auto& r = at<ServerRecord>(h->serversOffset)[index];
  return {at<char>(h->namesOffset) + r.nameOffset, r.nameLength};
}

ServerView ServerState::server(std::uint64_t index) const {
  const auto* h = at<ServerStateHeader>(sizeof(ZoneHeader));
  const auto& r = at<ServerRecord>(h->serversOffset)[index];
  return {serverName(index), decodeAddress(r), r.weight, (r.flags & kDisabled) != 0,
          (r.flags & kChecked) != 0};
}

ServerLive& ServerState::live(std::uint64_t index) const {
  const auto* h = at<ServerStateHeader>(sizeof(ZoneHeader));
  return at<ServerLive>(h->liveOffset)[index];
}

unsigned ServerState::weight(std::uint64_t index) const {
  std::uint16_t override = live(index).weightPlusOne.load(std::memory_order_relaxed);
  if (override) return override - 1u;
  const auto* h = at<ServerStateHeader>(sizeof(ZoneHeader));
  return at<ServerRecord>(h->serversOffset)[index].weight;
}

bool ServerState::eligible(std::uint64_t index) const {
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
