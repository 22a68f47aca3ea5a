#include "shm/zone.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

namespace molt::shm {
namespace {

std::string errnoText(const char* call, std::string_view what) {
  return fmt::format("{}({}): {}", call, what, std::strerror(errno));
}

// Everything but the magic: a zone that is not ours at all gets its own message.
std::string headerMismatch(const ZoneHeader& header, ZoneKind kind, std::uint32_t version,
                           std::uint64_t size, std::uint64_t fileSize) {
  std::string_view name = zoneKindName(kind);
  if (header.kind != static_cast<std::uint32_t>(kind)) {
    return fmt::format("{} zone: the memfd holds a {} zone (kind {})", name,
                       zoneKindName(static_cast<ZoneKind>(header.kind)), header.kind);
  }
  if (header.version != version) {
    return fmt::format("{} zone: layout version {}, this binary knows {}", name, header.version,
                       version);
  }
  if (header.size != fileSize) {
    return fmt::format("{} zone: header says {} bytes, the memfd has {}", name, header.size,
                       fileSize);
  }
  if (size != 0 && header.size != size) {
    return fmt::format("{} zone: {} bytes, expected {}", name, header.size, size);
  }
  return "";
}

}  // namespace

std::string_view zoneKindName(ZoneKind kind) {
  switch (kind) {
    case ZoneKind::SessionCache:
      return "session-cache";
    case ZoneKind::TicketKeys:
      return "ticket-keys";
    case ZoneKind::ServerState:
      return "server-state";
    case ZoneKind::ServerLoad:
      return "server-load";
    case ZoneKind::WorkerStats:
      return "worker-stats";
  }
  return "unknown";
}

std::optional<Zone> Zone::create(ZoneKind kind, std::uint32_t version, std::uint64_t size,
                                 std::string& error) {
  std::string name = fmt::format("molt-{}", zoneKindName(kind));
  if (size < sizeof(ZoneHeader)) {
    error = fmt::format("{}: {} bytes is smaller than the zone header", name, size);
    return std::nullopt;
  }
  common::UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) {
    error = errnoText("memfd_create", name);
    return std::nullopt;
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    error = errnoText("ftruncate", name);
    return std::nullopt;
  }
  // A worker that resized the memfd would SIGBUS every other process mapping it.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    error = errnoText("fcntl(F_ADD_SEALS)", name);
    return std::nullopt;
  }
  Mapping mapping = Mapping::share(fd.get(), size, Access::ReadWrite, name, error);
  if (!mapping) return std::nullopt;
  auto* header = reinterpret_cast<ZoneHeader*>(mapping.data());
  std::memcpy(header->magic, kMagic, sizeof kMagic);
  header->version = version;
  header->kind = static_cast<std::uint32_t>(kind);
  header->size = size;
  header->created = static_cast<std::int64_t>(std::time(nullptr));
  return Zone(std::move(fd), std::move(mapping), kind);
}

std::optional<Zone> Zone::open(common::UniqueFd fd, ZoneKind kind, std::uint32_t version,
                               std::uint64_t size, Access access, std::string& error) {
  std::string name = fmt::format("molt-{}", zoneKindName(kind));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    error = errnoText("fstat", name);
    return std::nullopt;
  }
  auto fileSize = static_cast<std::uint64_t>(st.st_size);
  if (fileSize < sizeof(ZoneHeader)) {
    error = fmt::format("{} zone: the memfd has {} bytes, not even a zone header",
                        zoneKindName(kind), fileSize);
    return std::nullopt;
  }
  Mapping mapping = Mapping::share(fd.get(), fileSize, access, name, error);
  if (!mapping) return std::nullopt;
  const auto* header = reinterpret_cast<const ZoneHeader*>(mapping.data());
  if (std::memcmp(header->magic, kMagic, sizeof kMagic) != 0) {
    error = fmt::format("{} zone: bad magic, not a molt zone", zoneKindName(kind));
    return std::nullopt;
  }
  error = headerMismatch(*header, kind, version, size, fileSize);
  if (!error.empty()) return std::nullopt;
  return Zone(std::move(fd), std::move(mapping), kind);
}

common::UniqueFd Zone::readOnlyDescriptor() const {
  std::string path = "/proc/self/fd/" + std::to_string(fd_.get());
  return common::UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

void Zone::release() noexcept {
  mapping_.reset();
  fd_.reset();
}

int Zone::punchHole(std::uint64_t offset, std::uint64_t length) noexcept {
  if (!fd_) {
    // A worker that dropped its descriptor: MADV_REMOVE frees shmem pages through the mapping
    // just as the hole punch would (offsets here are page-aligned).
    if (!mapping_ || offset + length > mapping_.size()) return -EINVAL;
    return ::madvise(mapping_.data() + offset, length, MADV_REMOVE) == 0 ? 0 : -errno;
  }
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) != 0) {
    return -errno;
  }
  return 0;
}

}  // namespace molt::shm
