#include "worker/backend.hpp"

#include <algorithm>

namespace molt::worker {

Backend::Backend(const common::BackendConfig& config)
    : config_(&config), declared_(config.servers.size()) {
  for (std::uint64_t i = 0; i < config.servers.size(); ++i) {
    const auto& s = config.servers[i];
    if (s.disabled) continue;
    servers_.push_back(Server{s.name, s.address, s.weight, s.disabled, 0, 0, i});
    if (s.weight > 0) eligible_.push_back(static_cast<int>(servers_.size() - 1));
  }
  servers_.shrink_to_fit();
}

int Backend::pick(std::span<const int> exclude) {
  // nginx-style smooth weighting: every eligible server gains its weight, the richest wins and
  // pays the total. Interleaves servers in proportion to weight without bursts.
  std::int64_t total = 0;
  int best = -1;
  for (int index : eligible_) {
    if (std::find(exclude.begin(), exclude.end(), index) != exclude.end()) continue;
    Server& s = servers_[static_cast<size_t>(index)];
    if (state_ && state_->live(first_ + s.declared).health.load(std::memory_order_relaxed) !=
                      static_cast<std::uint8_t>(shm::ServerHealth::Up))
      continue;
    s.currentWeight += s.weight;
    total += s.weight;
    if (best < 0 || s.currentWeight > servers_[static_cast<size_t>(best)].currentWeight)
      best = index;
  }
  if (best >= 0) servers_[static_cast<size_t>(best)].currentWeight -= total;
  return best;
}

}  // namespace molt::worker
