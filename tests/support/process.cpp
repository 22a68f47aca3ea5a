#include "tests/support/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace molt::test {

Child::Child(const std::vector<std::string>& argv, const std::vector<std::string>& extraEnv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw std::runtime_error("pipe2 failed");
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  for (const auto& e : extraEnv) env.push_back(e);
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  fflush(nullptr);
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    // Its own process group: a test's ^C-like signal to the group never reaches the runner.
    setpgid(0, 0);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(fds[1]);
  reader_ = std::thread([this, fd = fds[0]] { readLoop(fd); });
}

Child::~Child() {
  if (pid_ > 0) {
    // The child leads its own process group; molt's workers inherit it. Killing the group by
    // the pid we started leaves no worker holding our output pipe open.
    ::kill(-pid_, SIGKILL);
    if (!reaped_) waitExit(5s);
  }
  if (reader_.joinable()) reader_.join();
}

void Child::readLoop(int fd) {
  char chunk[4096];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lock(mutex_);
    if (n <= 0) {
      eof_ = true;
      changed_.notify_all();
      break;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    size_t newline;
    while ((newline = buffer_.find('\n')) != std::string::npos) {
      lines_.push_back(buffer_.substr(0, newline));
      buffer_.erase(0, newline + 1);
    }
    changed_.notify_all();
  }
  close(fd);
}

std::optional<std::vector<std::string>> Child::waitForLine(const std::string& pattern,
                                                           std::chrono::milliseconds timeout,
                                                           size_t fromLine) {
  std::regex re(pattern);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  size_t next = fromLine;
  for (;;) {
    for (; next < lines_.size(); ++next) {
      std::smatch match;
      if (std::regex_search(lines_[next], match, re)) {
        std::vector<std::string> groups;
        for (const auto& m : match) groups.push_back(m.str());
        return groups;
      }
    }
    if (eof_) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && next == lines_.size())
      return std::nullopt;
  }
}

std::vector<std::string> Child::lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

std::string Child::output() const {
  std::lock_guard lock(mutex_);
  std::string all;
  for (const auto& l : lines_) all += l + "\n";
  return all + buffer_;
}

void Child::signal(int signum) const {
  if (!reaped_ && pid_ > 0) ::kill(pid_, signum);
}

std::optional<int> Child::waitExit(std::chrono::milliseconds timeout) {
  if (reaped_) return status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = status;
      // What it wrote last may still be in the pipe: wait for the reader to see EOF (bounded, as
      // a process it left behind may hold the pipe open).
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, 2s, [this] { return eof_; });
      return status;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

bool Child::running() {
  return !waitExit(0ms).has_value();
}

TempDir::TempDir() {
  char pattern[] = "/tmp/molt-test-XXXXXX";
  if (!mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& contents) const {
  std::string full = path_ + "/" + name;
  std::ofstream(full, std::ios::binary) << contents;
  return full;
}

static std::string fromEnv(const char* name) {
  const char* value = std::getenv(name);
  if (!value || !*value)
    throw std::runtime_error(std::string(name) + " is not set (run via meson test)");
  return value;
}

std::string moltBinary() {
  return fromEnv("MOLT_BIN");
}
std::string originBinary() {
  return fromEnv("MOLT_ORIGIN");
}

bool sanitizedBuild() {
  const char* flag = std::getenv("MOLT_SANITIZED");
  return flag && *flag == '1';
}

bool processAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

long rssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value = -1;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return value;
}

std::vector<pid_t> childrenOf(pid_t pid) {
  std::vector<pid_t> children;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    pid_t child;
    while (in >> child) children.push_back(child);
  }
  return children;
}

}  // namespace molt::test
