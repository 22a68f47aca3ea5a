#include "tests/shm/shm_test_support.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

namespace molt::shm::test {

Child::Child(std::function<int()> body) {
  pid_ = ::fork();
  if (pid_ == 0) {
    int status = 1;
    try {
      status = body();
    } catch (...) {
      status = 99;
    }
    ::_exit(status);
  }
}

Child::~Child() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

int Child::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return -1;
}

Signal::Signal() {
  if (::pipe(fds_) != 0) fds_[0] = fds_[1] = -1;
}

Signal::~Signal() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

void Signal::post() {
  char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(fds_[1], &byte, 1);
}

bool Signal::await(std::chrono::milliseconds timeout) {
  pollfd p{fds_[0], POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
  char byte;
  return ::read(fds_[0], &byte, 1) == 1;
}

namespace {

// Finds the smaps block of the mapping starting at `address`; calls `line` on each of its lines
// (the header line first).
bool forMapping(const void* address, const std::function<void(const std::string&)>& line) {
  std::ifstream smaps("/proc/self/smaps");
  std::ostringstream prefix;
  prefix << std::hex << reinterpret_cast<std::uintptr_t>(address) << '-';
  std::string text;
  bool inside = false, found = false;
  while (std::getline(smaps, text)) {
    bool header = text.find('-') != std::string::npos && text.find(':') > text.find(' ');
    if (header) inside = text.rfind(prefix.str(), 0) == 0;
    if (inside) {
      found = true;
      line(text);
    }
  }
  return found;
}

}  // namespace

std::int64_t residentBytes(const void* address) {
  std::int64_t kb = -1;
  forMapping(address, [&](const std::string& text) {
    if (text.rfind("Rss:", 0) == 0) kb = std::stoll(text.substr(4));
  });
  return kb < 0 ? -1 : kb * 1024;
}

std::string mappingName(const void* address) {
  std::string name;
  bool first = true;
  forMapping(address, [&](const std::string& text) {
    if (!std::exchange(first, false)) return;
    std::istringstream fields(text);
    std::string range, perms, offset, dev, inode;
    fields >> range >> perms >> offset >> dev >> inode;
    std::getline(fields >> std::ws, name);
  });
  return name;
}

}  // namespace molt::shm::test
