// sd_notify for the master: readiness, reloads, stop and a status line for systemd.
#pragma once

#include <string>

namespace molt::master {

// Thin layer over libsystemd's sd_notify. Without NOTIFY_SOCKET every call is a no-op; failures
// are logged once and never fatal. Master process only.
class Notifier {
 public:
  // READY=1 with MAINPID and STATUS: the first generation serves, or a reload ended (also a
  // failed one: STATUS says so).
  void ready(const std::string& status);
  // RELOADING=1 with MONOTONIC_USEC (systemd >= 253 requires it for Type=notify-reload).
  void reloading(const std::string& status);
  void stopping(const std::string& status);
  void status(const std::string& status);
  // Sends raw assignments ("A=1\nB=2"); returns what sd_notify returned.
  int send(const std::string& state);

 private:
  bool warned_ = false;
};

}  // namespace molt::master
