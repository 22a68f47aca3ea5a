// Test support: a NOTIFY_SOCKET stand-in, the unix datagram socket systemd would own.
#pragma once

#include <chrono>
#include <string>

#include "common/unique_fd.hpp"
#include "tests/support/process.hpp"

namespace molt::test {

class NotifyListener {
 public:
  explicit NotifyListener(const TempDir& dir);
  std::string env() const { return "NOTIFY_SOCKET=" + path_; }
  // The next datagram that is not a bare STATUS= update, or "" after `timeout`.
  std::string next(std::chrono::milliseconds timeout = 20s);
  // The next datagram (STATUS= updates included) that contains `text`, or "" after `timeout`.
  std::string nextContaining(const std::string& text, std::chrono::milliseconds timeout = 20s);

 private:
  std::string receive(std::chrono::steady_clock::time_point deadline);

  std::string path_;
  molt::common::UniqueFd fd_;
};

}  // namespace molt::test
