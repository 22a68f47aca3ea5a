// libFuzzer target: the shared-memory zones over arbitrary bytes, as a compromised worker could
// leave them: attaching (header and layout checks) and every read the master or a worker makes
// afterwards. Byte 0 picks the zone; the rest is written over it.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "shm/server_state.hpp"
#include "shm/session_cache.hpp"
#include "shm/ticket_keys.hpp"

using namespace molt;

namespace {

common::UniqueFd memfdOf(const std::uint8_t* data, std::size_t size, std::size_t minimum) {
  common::UniqueFd fd(memfd_create("fuzz-zone", MFD_CLOEXEC));
  std::size_t length = std::max(size, minimum);
  if (ftruncate(fd.get(), static_cast<off_t>(length)) != 0) return common::UniqueFd();
  if (size && pwrite(fd.get(), data, size, 0) != static_cast<ssize_t>(size)) return common::UniqueFd();
  return fd;
}

// A real cache whose shard index (bucket heads, LRU ends) and entries area the input overwrites:
// every read a worker makes must stay in bounds and end. Lookups at time zero never find an entry
// expired (valid entries expire after it), so they never free one: what is tested is the walking,
// the checking and the copying.
void sessionCacheRegion(const std::uint8_t* data, std::size_t size) {
  std::string error;
  static auto cache = [] {
    std::string e;
    auto c = shm::SessionCache::create(256 * 1024, e, 1);
    std::uint8_t key[4] = {1, 2, 3, 4}, value[8] = {};
    c->store(key, value, std::chrono::seconds(60));  // lays the shard out
    return c;
  }();
  auto view = cache->shardRegion(0);
  std::size_t index = std::min<std::size_t>(size, view.indexBytes);
  std::memset(view.region, 0, view.indexBytes);
  std::memcpy(view.region, data, index);
  // Past the allocator's own header: where entries live.
  std::uint64_t entries = view.indexBytes + 4096;
  std::memcpy(view.region + entries, data + index,
              std::min<std::uint64_t>(size - index, view.bytes - entries));
  std::vector<std::uint8_t> out;
  for (std::uint8_t key = 0; key < 8; ++key) {
    std::uint8_t k[4] = {key, key, key, key};
    cache->lookup(k, out, shm::SessionCache::Clock::time_point{});
  }
  (void)cache->stats();
}

void sessionCacheAttach(const std::uint8_t* data, std::size_t size) {
  std::string error;
  if (auto cache = shm::SessionCache::attach(memfdOf(data, size, 128 * 1024), 0, error))
    (void)cache->stats();
}

void serverState(const std::uint8_t* data, std::size_t size) {
  std::string error;
  static const auto config = common::parseConfig(
      R"({"backends": [{"name": "b", "servers": [{"name": "s", "address": "127.0.0.1:1"}]}]})",
      "fuzz.json");
  auto built = shm::ServerState::build(config, error);
  // The input replaces the start of the table; the layout the worker computes must refuse or
  // bound whatever it says.
  std::memcpy(built->zone().data(), data, std::min<std::uint64_t>(size, built->zone().size()));
  auto state = shm::ServerState::attach(built->tableForWorker(), built->loadForWorker(),
                                        shm::Access::ReadOnly, error);
  if (!state) return;
  for (std::uint32_t b = 0; b < state->backendCount() && b < 64; ++b) (void)state->backend(b);
  for (std::uint64_t i = 0; i < state->serverCount() && i < 64; ++i) {
    (void)state->server(i);
    (void)state->eligible(i);
  }
  (void)state->server(state->capacity());
}

void ticketKeys(const std::uint8_t* data, std::size_t size) {
  std::string error;
  if (auto keys = shm::TicketKeys::attach(memfdOf(data, size, 0), shm::Access::ReadOnly, error))
    (void)keys->snapshot();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  switch (data[0] % 4) {
    case 0:
      sessionCacheRegion(data + 1, size - 1);
      break;
    case 1:
      sessionCacheAttach(data + 1, size - 1);
      break;
    case 2:
      serverState(data + 1, size - 1);
      break;
    case 3:
      ticketKeys(data + 1, size - 1);
      break;
  }
  return 0;
}
