// Memory of a process as the kernel accounts it (/proc/PID/smaps_rollup).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace molt::common {

// Bytes. Forked processes share pages, so RSS alone misleads: PSS splits shared pages among
// their users and "private" (Private_Clean + Private_Dirty) is what the process alone holds.
struct ProcessMemory {
  std::uint64_t rss = 0;
  std::uint64_t pss = 0;
  std::uint64_t privateBytes = 0;
  std::uint64_t shmem = 0;  // Pss_Shmem: this process's share of shared memory (zones, memfds)
};

// Reads /proc/PID/smaps_rollup; nullopt when the process is gone or the file unreadable.
std::optional<ProcessMemory> readProcessMemory(pid_t pid);

// "12.3 MiB", "512 KiB", "0 B".
std::string formatBytes(std::uint64_t bytes);

}  // namespace molt::common
