#include "common/log.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace molt::common::log {
namespace {
std::string gRole = "molt";
}

void setRole(std::string role) {
  gRole = std::move(role);
}

void write(Level level, std::string_view message) {
  timeval now{};
  gettimeofday(&now, nullptr);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  const char* tag = level == Level::Info ? "" : level == Level::Warn ? "warning: " : "error: ";
  std::string line =
      fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z molt[{}] {}: {}{}\n",
                  utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                  utc.tm_sec, now.tv_usec / 1000, getpid(), gRole, tag, message);
  // A short write to a pipe of a line under PIPE_BUF is atomic; retry only on EINTR.
  std::string_view rest = line;
  while (!rest.empty()) {
    ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace molt::common::log
