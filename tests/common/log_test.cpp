// Log lines: molt's own prefix on a terminal or a file, the journal's conventions under systemd.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/log.hpp"

namespace {

// What one info and one warning line look like when a child process writes them to a pipe as
// its stderr, with JOURNAL_STREAM naming that pipe (`journal`), another file, or unset.
std::string linesWritten(const char* journal) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  std::fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    struct stat st {};
    fstat(STDERR_FILENO, &st);
    std::string self = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    if (journal == nullptr)
      unsetenv("JOURNAL_STREAM");
    else
      setenv("JOURNAL_STREAM", std::string(journal) == "self" ? self.c_str() : journal, 1);
    molt::common::log::stderrChanged();  // whatever the test process logged before
    molt::common::log::setRole("master");
    molt::common::log::info("generation {} serving", 1);
    molt::common::log::warn("a warning");
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buffer[512];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) out.append(buffer, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

}  // namespace

TEST_CASE("log lines: a time stamp of their own, or the journal's priority under systemd",
          "[log]") {
  using Catch::Matches;
  const std::string own = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z molt\[\d+\] master: )";
  CHECK_THAT(linesWritten(nullptr),
             Matches(own + "generation 1 serving\n" + own + "warning: a warning\n"));
  // stderr is the journal's stream: no time stamp (the journal adds one), a priority it reads.
  CHECK_THAT(linesWritten("self"), Matches(R"(<6>molt\[\d+\] master: generation 1 serving\n)"
                                           R"(<4>molt\[\d+\] master: warning: a warning\n)"));
  // Inherited by a process whose stderr went elsewhere: molt's own format.
  CHECK_THAT(linesWritten("1:2"),
             Matches(own + "generation 1 serving\n" + own + "warning: a warning\n"));
  CHECK_THAT(linesWritten("garbage"), Matches(own + R"([\s\S]*)"));
}
