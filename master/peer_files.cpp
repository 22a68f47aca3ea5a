#include "master/peer_files.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/unique_fd.hpp"

namespace molt::master {
namespace {

constexpr size_t kMaxFile = 1 << 20;
constexpr int kReadTimeoutMs = 2'000;

// In the forked child: only async-signal-safe calls. Writes the file's bytes to `out`, or a
// single NUL then the errno value when it cannot.
[[noreturn]] void readAs(const ApiPeer& peer, const char* path, int out) {
  auto fail = [out](int err) {
    char message[1 + sizeof(int)] = {0};
    std::memcpy(message + 1, &err, sizeof err);
    ssize_t ignored = write(out, message, sizeof message);
    (void)ignored;
    _exit(1);
  };
  if (setgroups(peer.groups.size(), peer.groups.data()) != 0 || setgid(peer.gid) != 0 ||
      setuid(peer.uid) != 0)
    fail(EPERM);
  // Non-blocking: a FIFO must not hang the read.
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) fail(errno);
  if (!S_ISREG(st.st_mode)) fail(EINVAL);
  if (static_cast<size_t>(st.st_size) > kMaxFile) fail(EFBIG);
  if (write(out, "D", 1) != 1) _exit(1);
  char buffer[16384];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0)
    if (write(out, buffer, static_cast<size_t>(n)) != n) _exit(1);
  _exit(n < 0 ? 1 : 0);
}

std::optional<std::string> readAsPeer(const ApiPeer& peer, const std::string& path,
                                      std::string& error) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return std::nullopt;
  }
  common::UniqueFd in(fds[0]), out(fds[1]);
  std::fflush(nullptr);
  pid_t child = fork();
  if (child < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    return std::nullopt;
  }
  if (child == 0) readAs(peer, path.c_str(), out.get());
  out.reset();
  std::string data;
  char buffer[16384];
  bool timedOut = false;
  for (;;) {
    pollfd p{in.get(), POLLIN, 0};
    int ready = poll(&p, 1, kReadTimeoutMs);
    if (ready <= 0) {
      timedOut = ready == 0;
      break;
    }
    ssize_t n = read(in.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    data.append(buffer, static_cast<size_t>(n));
    if (data.size() > kMaxFile + 1) break;
  }
  kill(child, SIGKILL);  // harmless when it already exited
  waitpid(child, nullptr, 0);
  if (timedOut) {
    error = "timed out";
    return std::nullopt;
  }
  if (!data.empty() && data[0] == 'D') return data.substr(1);
  int err = EIO;
  if (data.size() == 1 + sizeof(int)) std::memcpy(&err, data.data() + 1, sizeof err);
  error = err == EINVAL  ? std::string("not a regular file")
          : err == EFBIG ? "larger than 1 MiB"
                         : std::string(std::strerror(err));
  return std::nullopt;
}

}  // namespace

common::FileSource filesReadableBy(const ApiPeer& peer) {
  if (peer.uid == 0 || peer.uid == geteuid()) return common::FileSource::disk();
  common::FileSource files;
  files.read = [peer](const std::string& path, std::string& error) {
    return readAsPeer(peer, path, error);
  };
  files.list = [](const std::string&, std::string& error) {
    error = "directories are not read for runtime changes";
    return std::optional<std::vector<std::string>>();
  };
  return files;
}

}  // namespace molt::master
