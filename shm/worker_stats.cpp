#include "shm/worker_stats.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace molt::shm {
namespace {

constexpr std::uint32_t kVersion = 1;
constexpr std::uint32_t kMaxFrontends = 1u << 16;
constexpr std::uint32_t kMaxBackendRows = 1u << 22;

std::uint64_t align(std::uint64_t n, std::uint64_t to) {
  return (n + to - 1) / to * to;
}

bool nameCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

}  // namespace

StatsLayout StatsLayout::of(std::uint32_t frontends, std::uint32_t backends) {
  StatsLayout l;
  l.frontends = frontends;
  l.backends = backends;
  l.workerOffset = sizeof(ZoneHeader) + sizeof(StatsHeader);
  l.frontendsOffset = l.workerOffset + sizeof(WorkerRow);
  l.backendsOffset = align(l.frontendsOffset + std::uint64_t{frontends} * sizeof(FrontendRow), 128);
  l.size = align(l.backendsOffset + std::uint64_t{backends} * sizeof(BackendRow), 4096);
  return l;
}

void recordResponse(BackendRow& row, std::uint64_t micros) noexcept {
  bump(row.responses);
  bump(row.responseMicros, micros);
  std::size_t bucket = static_cast<std::size_t>(
      std::lower_bound(kResponseBuckets.begin(), kResponseBuckets.end(), micros) -
      kResponseBuckets.begin());
  bump(row.buckets[bucket]);
}

std::unique_ptr<WorkerStats> WorkerStats::create(StatsLayout layout, std::string& error) {
  if (layout.frontends > kMaxFrontends || layout.backends > kMaxBackendRows) {
    error = fmt::format("worker-stats zone: {} frontends and {} backend rows is too many",
                        layout.frontends, layout.backends);
    return nullptr;
  }
  auto zone = Zone::create(ZoneKind::WorkerStats, kVersion, layout.size, error);
  if (!zone) return nullptr;
  auto* header = reinterpret_cast<StatsHeader*>(zone->data() + sizeof(ZoneHeader));
  header->frontends = layout.frontends;
  header->backends = layout.backends;
  return std::unique_ptr<WorkerStats>(new WorkerStats(std::move(*zone), layout));
}

std::unique_ptr<WorkerStats> WorkerStats::attach(common::UniqueFd fd, std::uint64_t size,
                                                 std::uint32_t frontends, std::string& error) {
  auto zone =
      Zone::open(std::move(fd), ZoneKind::WorkerStats, kVersion, size, Access::ReadWrite, error);
  if (!zone) return nullptr;
  // The master wrote the header before granting the zone; it must describe exactly this size.
  const auto* header = reinterpret_cast<const StatsHeader*>(zone->data() + sizeof(ZoneHeader));
  if (header->frontends != frontends || header->backends > kMaxBackendRows ||
      StatsLayout::of(header->frontends, header->backends).size != size) {
    error = fmt::format(
        "worker-stats zone: header says {} frontends and {} backend rows in {} bytes; this "
        "worker has {} frontends",
        header->frontends, header->backends, size, frontends);
    return nullptr;
  }
  return std::unique_ptr<WorkerStats>(
      new WorkerStats(std::move(*zone), StatsLayout::of(header->frontends, header->backends)));
}

std::unique_ptr<WorkerStats> WorkerStats::adopt(common::UniqueFd fd, StatsLayout layout,
                                                std::string& error) {
  // The header is a worker's to scribble on: only the layout recorded by the master counts, and
  // the memfd's size (sealed) must match it.
  auto zone = Zone::open(std::move(fd), ZoneKind::WorkerStats, kVersion, layout.size,
                         Access::ReadWrite, error);
  if (!zone) return nullptr;
  return std::unique_ptr<WorkerStats>(new WorkerStats(std::move(*zone), layout));
}

BackendRow* WorkerStats::claimBackend(std::string_view name) {
  if (claimed_ >= layout_.backends || name.empty() || name.size() > kMaxStatsName) return nullptr;
  BackendRow& row = backend(claimed_++);
  std::memcpy(row.name, name.data(), name.size());
  row.nameLength.store(static_cast<std::uint32_t>(name.size()), std::memory_order_release);
  return &row;
}

std::string WorkerStats::backendName(std::uint32_t index) const {
  if (index >= layout_.backends) return {};
  const BackendRow& row = backend(index);
  std::uint32_t length = row.nameLength.load(std::memory_order_acquire);
  if (length == 0 || length > kMaxStatsName) return {};
  // Copied first, then checked: the worker may change the bytes meanwhile.
  std::string name(row.name, length);
  if (!std::all_of(name.begin(), name.end(), nameCharacter)) return {};
  return name;
}

}  // namespace molt::shm
