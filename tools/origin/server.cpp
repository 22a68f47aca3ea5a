// Server: listening, accepting, and stopping on a signal.
#include "tools/origin/server.hpp"

#include <fmt/format.h>

#include <csignal>
#include <cstdio>

#include "common/log.hpp"
#include "tools/origin/tcp_echo.hpp"

namespace molt::origin {
namespace {

constexpr int kBacklog = 4096;

std::string addressText(const sockaddr_storage& address) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    uv_ip6_name(v6, host, sizeof host);
    return fmt::format("[{}]:{}", host, ntohs(v6->sin6_port));
  }
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
  uv_ip4_name(v4, host, sizeof host);
  return fmt::format("{}:{}", host, ntohs(v4->sin_port));
}

}  // namespace

Server::Server(uv_loop_t* loop, std::string name) : loop_(loop) {
  http_.name = std::move(name);
}

bool Server::listen(const ListenSpec& spec, std::string& error) {
  auto listener = std::make_unique<Listener>(Listener{this, spec.kind, {}});
  uv_tcp_t* tcp = listener->tcp.get();
  // uv_tcp_bind sets SO_REUSEADDR itself on Unix.
  int rc = uv_tcp_init(loop_, tcp);
  if (rc == 0) rc = uv_tcp_bind(tcp, reinterpret_cast<const sockaddr*>(&spec.address), 0);
  if (rc == 0) rc = uv_listen(listener->tcp.stream(), kBacklog, &Server::onConnection);
  sockaddr_storage bound{};
  int length = sizeof bound;
  if (rc == 0) rc = uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&bound), &length);
  if (rc != 0) {
    error = fmt::format("listen({}): {}", spec.text, uv_strerror(rc));
    return false;
  }
  tcp->data = listener.get();
  const char* kind = spec.kind == ListenerKind::Http ? "http" : "tcp-echo";
  fmt::print("listening {} {}\n", kind, addressText(bound));
  std::fflush(stdout);
  listeners_.push_back(std::move(listener));
  return true;
}

void Server::onConnection(uv_stream_t* stream, int status) {
  auto* listener = static_cast<Listener*>(stream->data);
  if (!listener) return;
  if (status < 0) {
    common::log::warn("accept: {}", uv_strerror(status));
    return;
  }
  Server& server = *listener->server;
  Connection* connection;
  if (listener->kind == ListenerKind::Http) {
    connection = new HttpConnection(server.connections_, server.http_);
  } else {
    connection = new EchoConnection(server.connections_);
  }
  if (!connection->accept(stream)) delete connection;
}

void Server::watchSignals() {
  startSignal(sigterm_, SIGTERM);
  startSignal(sigint_, SIGINT);
}

void Server::startSignal(common::UvHandle<uv_signal_t>& handle, int signal) {
  uv_signal_init(loop_, handle.get());
  handle->data = this;
  uv_signal_start(handle.get(), &Server::onSignal, signal);
}

void Server::onSignal(uv_signal_t* handle, int) {
  if (auto* server = static_cast<Server*>(handle->data)) server->stop();
}

void Server::stop() {
  listeners_.clear();
  connections_.closeAll();
  sigterm_.close();
  sigint_.close();
}

}  // namespace molt::origin
