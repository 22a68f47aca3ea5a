#include "tests/support/notify_listener.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <catch2/catch.hpp>
#include <cstdio>

namespace molt::test {

NotifyListener::NotifyListener(const TempDir& dir) : path_(dir.path() + "/notify.sock") {
  fd_.reset(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
  REQUIRE(bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
}

std::string NotifyListener::receive(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return "";
  pollfd p{fd_.get(), POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
  char buf[4096];
  ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::string NotifyListener::next(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::string message = receive(deadline);
    if (message.empty() || message.rfind("STATUS=", 0) != 0) return message;
  }
}

std::string NotifyListener::nextContaining(const std::string& text,
                                           std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::string message = receive(deadline);
    if (message.empty() || message.find(text) != std::string::npos) return message;
  }
}

}  // namespace molt::test
