#include "tests/support/api_client.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>

#include "tests/support/net.hpp"

namespace molt::test {

common::UniqueFd connectApi(const std::string& path) {
  common::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{30, 0};  // server.del may wait 10 s for connections to end
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return {};
  return fd;
}

nlohmann::json askApi(int fd, const std::string& line) {
  sendAll(fd, line + "\n");
  return nlohmann::json::parse(recvUntil(fd, "\n"), nullptr, false);
}

nlohmann::json askApi(const std::string& path, const std::string& line) {
  auto fd = connectApi(path);
  return fd ? askApi(fd.get(), line) : nlohmann::json("connect failed");
}

}  // namespace molt::test
