#include "worker/backend.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace molt::worker {

Backend::Backend(common::BackendConfig config, const shm::ServerState* state, std::uint64_t first)
    : config_(std::move(config)),
      declared_(config_.servers.size()),
      state_(state),
      first_(first),
      random_(std::random_device{}() | 1) {
  for (std::uint64_t i = 0; i < config_.servers.size(); ++i) {
    const auto& s = config_.servers[i];
    if (s.disabled) continue;
    Server& server = servers_.emplace_back();
    server.declared = i;
    server.zoneIndex = first + i;
    if (!state)
      server.own =
          std::make_unique<ServerDescription>(ServerDescription{s.name, s.address, s.weight});
  }
  std::vector<common::ServerConfig>().swap(config_.servers);
  rebuildEligible();
}

// Servers not removed, in order. Weight is left to usable(): the zone's may change at runtime.
void Backend::rebuildEligible() {
  eligible_.clear();
  for (std::size_t i = 0; i < servers_.size(); ++i)
    if (!servers_[i].removed && (state_ || weightOf(servers_[i]) > 0))
      eligible_.push_back(static_cast<int>(i));
  eligible_.shrink_to_fit();
}

void Backend::attachState(const shm::ServerState* state, std::uint64_t first) {
  state_ = state;
  first_ = first;
  for (Server& s : servers_) {
    // Rows of file servers move with `first`; rows the master gave runtime servers do not.
    if (s.declared < declared_) s.zoneIndex = first + s.declared;
    if (state && s.own && matchesZone(s, s.own->name, s.own->address)) s.own.reset();
  }
  rebuildEligible();
}

void Backend::detachState() {
  if (!state_) return;
  for (Server& s : servers_) {
    if (s.own) {
      s.own->weight = state_->weight(s.zoneIndex);
    } else {
      shm::ServerView view = state_->server(s.zoneIndex);
      s.own = std::make_unique<ServerDescription>(
          ServerDescription{std::string(view.name), view.address, state_->weight(s.zoneIndex)});
    }
  }
  state_ = nullptr;
  rebuildEligible();
}

bool Backend::matchesZone(const Server& s, std::string_view name,
                          const common::SocketAddress& address) const {
  if (!state_ || s.zoneIndex >= state_->serverCount()) return false;
  shm::ServerView view = state_->server(s.zoneIndex);
  return view.name == name && view.address == address;
}

std::string_view Backend::serverName(int index) const {
  const Server& s = servers_[static_cast<size_t>(index)];
  return s.own ? std::string_view(s.own->name) : state_->serverName(s.zoneIndex);
}

common::SocketAddress Backend::serverAddress(int index) const {
  const Server& s = servers_[static_cast<size_t>(index)];
  return s.own ? s.own->address : state_->server(s.zoneIndex).address;
}

int Backend::find(std::string_view name) const {
  for (std::size_t i = 0; i < servers_.size(); ++i)
    if (!servers_[i].removed && serverName(static_cast<int>(i)) == name) return static_cast<int>(i);
  return -1;
}

const Server* Backend::putServer(const std::string& name, const common::SocketAddress& address,
                                 unsigned weight, std::uint64_t zoneIndex) {
  int index = find(name);
  bool moved = index >= 0 && !(serverAddress(index) == address);
  Server& s = index >= 0 ? servers_[static_cast<size_t>(index)] : servers_.emplace_back();
  if (moved) ++s.addressEpoch;
  if (index < 0) s.declared = kRuntime;
  s.zoneIndex = zoneIndex;
  // Held privately only when the zone's row does not say the same (an address changed later).
  if (matchesZone(s, name, address))
    s.own.reset();
  else
    s.own = std::make_unique<ServerDescription>(ServerDescription{name, address, weight});
  rebuildEligible();
  return moved ? &s : nullptr;
}

const Server* Backend::removeServer(std::string_view name) {
  int index = find(name);
  if (index < 0) return nullptr;
  Server& s = servers_[static_cast<size_t>(index)];
  s.removed = true;
  rebuildEligible();
  return &s;
}

namespace {

// FNV-1a, chainable: stable across processes and restarts (std::hash is not promised to be).
std::uint64_t fnv(std::uint64_t hash, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

// A 64-bit finaliser (splitmix64) so that nearby inputs give unrelated scores.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The bytes that identify a client: its IP, not its port.
std::uint64_t clientHash(const common::SocketAddress& a) {
  std::uint64_t h = 1469598103934665603ull;
  if (a.family() == AF_INET)
    return fnv(h, &reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr, 4);
  return fnv(h, &a.storage.sin6_addr, 16);
}

}  // namespace

bool Backend::usable(int index, std::span<const int> exclude) const {
  if (std::find(exclude.begin(), exclude.end(), index) != exclude.end()) return false;
  // Up (health checks), ready (not drain or maint) and a weight above zero, as the zone says.
  const Server& s = servers_[static_cast<size_t>(index)];
  return state_ ? state_->eligible(s.zoneIndex) : weightOf(s) > 0;
}

int Backend::pick(std::span<const int> exclude, const common::SocketAddress* client) {
  switch (config_.balance) {
    case common::Balance::LeastConn:
      return pickLeastConn(exclude);
    case common::Balance::Source:
      return client ? pickSource(exclude, *client) : pickRoundRobin(exclude);
    case common::Balance::Random:
      return pickRandom(exclude);
    case common::Balance::RoundRobin:
      break;
  }
  return pickRoundRobin(exclude);
}

int Backend::pickRoundRobin(std::span<const int> exclude) {
  // nginx-style smooth weighting: every eligible server gains its weight, the richest wins and
  // pays the total. Interleaves servers in proportion to weight without bursts.
  std::int64_t total = 0;
  int best = -1;
  for (int index : eligible_) {
    if (!usable(index, exclude)) continue;
    Server& s = servers_[static_cast<size_t>(index)];
    std::int64_t weight = weightOf(s);
    s.currentWeight += weight;
    total += weight;
    if (best < 0 || s.currentWeight > servers_[static_cast<size_t>(best)].currentWeight)
      best = index;
  }
  if (best >= 0) servers_[static_cast<size_t>(best)].currentWeight -= total;
  return best;
}

int Backend::pickLeastConn(std::span<const int> exclude) {
  int best = -1;
  std::uint64_t bestLoad = 0, bestWeight = 1;
  std::size_t n = eligible_.size();
  for (std::size_t k = 0; k < n; ++k) {
    int index = eligible_[(rotor_ + k) % n];
    if (!usable(index, exclude)) continue;
    std::uint64_t load = this->load(index), weight = weightOf(servers_[static_cast<size_t>(index)]);
    // load/weight < bestLoad/bestWeight, without division
    if (best < 0 || load * bestWeight < bestLoad * weight) {
      best = index;
      bestLoad = load;
      bestWeight = weight;
    }
  }
  ++rotor_;
  return best;
}

int Backend::pickSource(std::span<const int> exclude, const common::SocketAddress& client) {
  // Weighted rendezvous hashing: each server scores -weight / ln(u) with u uniform in (0, 1]
  // from hash(client, server); the highest score wins. Removing a server only moves the
  // clients it was winning.
  std::uint64_t c = clientHash(client);
  int best = -1;
  double bestScore = 0;
  for (int index : eligible_) {
    if (!usable(index, exclude)) continue;
    const Server& s = servers_[static_cast<size_t>(index)];
    std::string_view name = serverName(index);
    std::uint64_t h = mix(fnv(c, name.data(), name.size()));
    double u = (static_cast<double>(h >> 11) + 1.0) / 9007199254740993.0;  // (0, 1]
    double score = -static_cast<double>(weightOf(s)) / std::log(u);
    if (best < 0 || score > bestScore) {
      best = index;
      bestScore = score;
    }
  }
  return best;
}

int Backend::pickRandom(std::span<const int> exclude) {
  if (eligible_.empty()) return -1;
  auto next = [this] {
    random_ ^= random_ << 13;
    random_ ^= random_ >> 7;
    random_ ^= random_ << 17;
    return random_;
  };
  // A random usable server, without building a list on the request path: a few random draws
  // almost always hit one; when most servers are down or tried, a scan from a random start.
  auto draw = [&]() -> int {
    for (int attempt = 0; attempt < 8; ++attempt) {
      int index = eligible_[next() % eligible_.size()];
      if (usable(index, exclude)) return index;
    }
    std::size_t start = next() % eligible_.size();
    for (std::size_t k = 0; k < eligible_.size(); ++k) {
      int index = eligible_[(start + k) % eligible_.size()];
      if (usable(index, exclude)) return index;
    }
    return -1;
  };
  int a = draw();
  if (a < 0) return -1;
  int b = draw();
  // The less loaded per weight wins (the first on a tie).
  std::uint64_t wa = weightOf(servers_[static_cast<size_t>(a)]);
  std::uint64_t wb = weightOf(servers_[static_cast<size_t>(b)]);
  return load(b) * wa < load(a) * wb ? b : a;
}

void Backend::connectionOpened(int index) {
  Server& s = servers_[static_cast<size_t>(index)];
  ++s.connections;
  if (state_) state_->connections(s.zoneIndex).fetch_add(1, std::memory_order_relaxed);
}

void Backend::connectionClosed(int index) {
  Server& s = servers_[static_cast<size_t>(index)];
  --s.connections;
  if (state_) state_->connections(s.zoneIndex).fetch_sub(1, std::memory_order_relaxed);
}

unsigned Backend::load(int index) const {
  const Server& s = servers_[static_cast<size_t>(index)];
  if (state_) return state_->connections(s.zoneIndex).load(std::memory_order_relaxed);
  return s.connections;
}

}  // namespace molt::worker
