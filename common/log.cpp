#include "common/log.hpp"

#include <pthread.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iterator>

namespace molt::common::log {
namespace {
std::string gRole = "molt";
pid_t gPid = 0;  // 0: not read yet in this process

// glibc has not cached getpid() since 2.25; the access log prints it on every line.
[[maybe_unused]] const int gForgetPidInChildren =
    pthread_atfork(nullptr, nullptr, [] { gPid = 0; });
// Under systemd, stderr may be the journal's stream: JOURNAL_STREAM names its device and inode
// (a child whose stderr went elsewhere inherits the variable, hence the comparison). The journal
// stamps every line itself and reads a "<N>" syslog priority in front of it.
int gStderrIsJournal = -1;  // inherited across fork with stderr itself

bool stderrIsJournal() {
  int& answer = gStderrIsJournal;
  if (answer < 0) {
    answer = 0;
    unsigned long long device = 0, inode = 0;
    struct stat st {};
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream != nullptr && std::sscanf(stream, "%llu:%llu", &device, &inode) == 2 &&
        fstat(STDERR_FILENO, &st) == 0 && st.st_dev == device && st.st_ino == inode)
      answer = 1;
  }
  return answer == 1;
}
}  // namespace

void processChanged() noexcept {
  gPid = 0;
}

void stderrChanged() noexcept {
  gStderrIsJournal = -1;
}

int processId() noexcept {
  if (gPid == 0) gPid = getpid();
  return gPid;
}

void setRole(std::string role) {
  gRole = std::move(role);
}

// "molt[PID] ROLE: ", made again only when the process or its role changed.
const std::string& processTag() {
  static std::string tag;
  static int tagPid = 0;
  static std::string tagRole;
  if (tagPid != processId() || tagRole != gRole) {
    tagPid = processId();
    tagRole = gRole;
    tag = fmt::format("molt[{}] {}: ", tagPid, gRole);
  }
  return tag;
}

void appendLinePrefix(std::string& out, Level level) {
  const char* tag = level == Level::Info ? "" : level == Level::Warn ? "warning: " : "error: ";
  if (stderrIsJournal()) {
    out.append(level == Level::Info ? "<6>" : level == Level::Warn ? "<4>" : "<3>");
    out.append(processTag());
    out.append(tag);
    return;
  }
  static long second = -1;  // molt processes are single-threaded
  static char date[24];
  static std::size_t dateLength = 0;
  timeval now{};
  gettimeofday(&now, nullptr);
  if (now.tv_sec != second) {
    tm utc{};
    gmtime_r(&now.tv_sec, &utc);
    auto end = fmt::format_to_n(date, sizeof date, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                                utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                                utc.tm_min, utc.tm_sec);
    dateLength = end.size;
    second = now.tv_sec;
  }
  auto ms = static_cast<unsigned>(now.tv_usec / 1000);
  char digits[3] = {static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                    static_cast<char>('0' + ms % 10)};
  out.append(date, dateLength);
  out.append(digits, 3);
  out += "Z ";
  out.append(processTag());
  out.append(tag);
}

void write(Level level, std::string_view message) {
  std::string line;
  line.reserve(64 + message.size());
  appendLinePrefix(line, level);
  line.append(message);
  line += '\n';
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
