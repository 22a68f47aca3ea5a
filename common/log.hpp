// Logging to stderr: one line per event, "TIME molt[PID] ROLE: message".
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace molt::common::log {

enum class Level { Info, Warn, Error };

// Sets the role printed on every line ("master", "worker gen 3 slot 1"). Call once per process
// after fork/exec; not thread-safe (molt processes are single-threaded).
void setRole(std::string role);

// Forgets the process id printed on every line (read once, not per line): called in a child made
// without fork(3) (the zygote's raw clone); fork(3) children forget it by themselves.
void processChanged() noexcept;
// Forgets whether stderr is the journal (looked up once, then inherited across fork with stderr
// itself): for a process that points stderr, or JOURNAL_STREAM, somewhere else.
void stderrChanged() noexcept;
// This process's id, as printed on its lines.
int processId() noexcept;

// Appends the start of a log line, "TIME molt[PID] ROLE: " (plus "warning: " / "error: "), to
// `out`: for writers that batch their own lines (the access log). The date and time to the
// second are formatted once per second. When stderr is systemd's journal (JOURNAL_STREAM), the
// time is left to the journal and the line starts with its syslog priority: "<6>molt[PID] ROLE: ".
void appendLinePrefix(std::string& out, Level level = Level::Info);

// Writes one line with a single write(2) so lines from several processes sharing stderr never
// interleave mid-line.
void write(Level level, std::string_view message);

template <class... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::Info, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::Warn, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::Error, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace molt::common::log
