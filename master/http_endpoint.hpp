// A small HTTP/1.1 server on the master's loop for the metrics endpoint (master/metrics.hpp):
// GET and HEAD, one request per connection, answered in full and closed.
//
// Everything it reads comes from the network and is bounded: a request head of at most
// kMaxHead bytes (431 beyond), kMaxClients connections at once (more are closed at accept), and
// kTimeoutMs to send the head (408). Anything but a well-formed GET or HEAD gets 400, 405 or
// 505; the master's loop never waits on a client.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/address.hpp"
#include "common/unique_fd.hpp"
#include "common/uv_handle.hpp"

namespace molt::master {

struct HttpRequest {
  std::string method;                                      // "GET" or "HEAD"
  std::string path;                                        // percent-decoded, without the query
  std::vector<std::pair<std::string, std::string>> query;  // in order, percent-decoded
  // Every value of the query parameter `name`.
  std::vector<std::string> values(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
};

class HttpEndpoint {
 public:
  static constexpr std::size_t kMaxHead = 8192;
  static constexpr std::size_t kMaxClients = 32;
  static constexpr std::uint64_t kTimeoutMs = 10'000;
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  HttpEndpoint(uv_loop_t* loop, Handler handler);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Binds `address` (SO_REUSEADDR) and listens; "" or the reason it could not.
  std::string listen(const common::SocketAddress& address);
  // Uses a socket that already listens (binary upgrade).
  std::string adopt(common::UniqueFd fd);
  void close();
  bool listening() const { return listener_.initialized(); }
  int fd() const;
  const common::SocketAddress& address() const { return address_; }

  // Parses a request head (up to and including the blank line). nullopt-like: status != 0 is
  // the error to answer with. For tests.
  static int parse(std::string_view head, HttpRequest& request);

 private:
  class Client;
  void onConnection();
  void removeClient(Client* client);

  uv_loop_t* loop_;
  Handler handler_;
  common::SocketAddress address_;
  common::UvHandle<uv_tcp_t> listener_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<std::unique_ptr<Client>> closed_;  // destroyed from the idle callback
  common::UvHandle<uv_idle_t> reaper_;
};

}  // namespace molt::master
