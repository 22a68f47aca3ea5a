#include "common/proc_memory.hpp"

#include <fmt/format.h>

#include <fstream>
#include <string>

namespace molt::common {

std::optional<ProcessMemory> readProcessMemory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!in) return std::nullopt;
  ProcessMemory memory;
  std::string key;
  std::uint64_t kib = 0;
  bool any = false;
  // Lines are "Key:   1234 kB"; the first line (the address range header) fails to parse.
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    key = line.substr(0, colon);
    try {
      kib = std::stoull(line.substr(colon + 1));
    } catch (...) {
      continue;
    }
    any = true;
    std::uint64_t bytes = kib * 1024;
    if (key == "Rss")
      memory.rss = bytes;
    else if (key == "Pss")
      memory.pss = bytes;
    else if (key == "Private_Clean" || key == "Private_Dirty")
      memory.privateBytes += bytes;
    else if (key == "Pss_Shmem")
      memory.shmem = bytes;
  }
  if (!any) return std::nullopt;
  return memory;
}

std::string formatBytes(std::uint64_t bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

}  // namespace molt::common
