#include "master/takeover_guard.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/unique_fd.hpp"

extern char** environ;

namespace molt::master {
namespace {

constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

// Everything the fallback exec needs, prepared before the takeover starts: a signal handler may
// only make async-signal-safe calls, so nothing is built in it.
struct Fallback {
  int binary = -1;
  std::vector<int> fds;
  std::vector<std::string> argvStorage;
  std::vector<char*> argv;
  std::vector<std::string> envStorage;  // the environment, with kUpgradeFailedEnv last
  std::vector<char*> envp;
  char reason[200] = {};  // the value of kUpgradeFailedEnv, rewritten by the signal handler
  struct sigaction previous[sizeof kCrashSignals / sizeof kCrashSignals[0]];
};

Fallback* gFallback = nullptr;

// Exec of the previous binary with the inventory as the new image received it. Async-signal-safe.
void execFallback() {
  Fallback& f = *gFallback;
  for (int fd : f.fds) fcntl(fd, F_SETFD, 0);
  syscall(SYS_execveat, f.binary, "", f.argv.data(), f.envp.data(), AT_EMPTY_PATH);
}

void setReason(const char* text) {
  std::size_t n = 0;
  const char* prefix = "MOLT_UPGRADE_FAILED=";
  for (const char* p = prefix; *p && n + 1 < sizeof gFallback->reason; ++p)
    gFallback->reason[n++] = *p;
  for (const char* p = text; *p && n + 1 < sizeof gFallback->reason; ++p)
    gFallback->reason[n++] = *p;
  gFallback->reason[n] = '\0';
}

void onCrash(int signal) {
  char text[] = "the new binary crashed while taking over (signal 00)";
  text[sizeof text - 4] = static_cast<char>('0' + signal / 10 % 10);
  text[sizeof text - 3] = static_cast<char>('0' + signal % 10);
  setReason(text);
  execFallback();
  // The exec failed: die of the signal as if nothing had caught it.
  ::signal(signal, SIG_DFL);
  raise(signal);
}

}  // namespace

TakeoverGuard::TakeoverGuard(std::vector<int> fds, std::vector<std::string> argv) {
  const char* binary = std::getenv(kFallbackEnv);
  if (!binary || std::getenv(kUpgradeFailedEnv) || gFallback) return;
  auto* f = new Fallback;
  f->binary = std::atoi(binary);
  f->fds = std::move(fds);
  f->argvStorage = std::move(argv);
  for (auto& a : f->argvStorage) f->argv.push_back(a.data());
  f->argv.push_back(nullptr);
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, kFallbackEnv, std::strlen(kFallbackEnv)) != 0) f->envStorage.push_back(*e);
  for (auto& e : f->envStorage) f->envp.push_back(e.data());
  f->envp.push_back(f->reason);
  f->envp.push_back(nullptr);
  gFallback = f;
  setReason("the new binary failed while taking over");
  struct sigaction action {};
  action.sa_handler = onCrash;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_NODEFER;
  for (std::size_t i = 0; i < std::size(kCrashSignals); ++i)
    sigaction(kCrashSignals[i], &action, &f->previous[i]);
  armed_ = true;
}

TakeoverGuard::~TakeoverGuard() {
  disarm();
}

void TakeoverGuard::fallBack(const std::string& why) {
  if (!armed_) return;
  setReason(why.c_str());
  execFallback();
}

void TakeoverGuard::disarm() {
  if (!armed_) return;
  armed_ = false;
  for (std::size_t i = 0; i < std::size(kCrashSignals); ++i)
    sigaction(kCrashSignals[i], &gFallback->previous[i], nullptr);
  common::UniqueFd(gFallback->binary).reset();
  delete gFallback;
  gFallback = nullptr;
  unsetenv(kFallbackEnv);
}

}  // namespace molt::master
