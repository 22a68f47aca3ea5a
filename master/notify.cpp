#include "master/notify.hpp"

#include <time.h>
#include <unistd.h>

#include <cstring>

#include "common/log.hpp"
#include "master/systemd.hpp"

namespace molt::master {
namespace {

unsigned long long monotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<unsigned long long>(ts.tv_sec) * 1'000'000ull +
         static_cast<unsigned long long>(ts.tv_nsec) / 1000ull;
}

// STATUS= is one line; a multi-line config error keeps its first line.
std::string oneLine(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

int Notifier::send(const std::string& state) {
  // unset_environment = 0: the master notifies for its whole life, across reloads.
  int rc = systemd::notify(state.c_str());
  if (rc < 0 && !warned_) {
    warned_ = true;
    common::log::warn("sd_notify: {}", std::strerror(-rc));
  }
  return rc;
}

void Notifier::ready(const std::string& status) {
  send("READY=1\nMAINPID=" + std::to_string(getpid()) + "\nSTATUS=" + oneLine(status));
}

void Notifier::reloading(const std::string& status) {
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonicUsec()) +
       "\nSTATUS=" + oneLine(status));
}

void Notifier::stopping(const std::string& status) {
  send("STOPPING=1\nSTATUS=" + oneLine(status));
}

void Notifier::status(const std::string& status) {
  send("STATUS=" + oneLine(status));
}

}  // namespace molt::master
