// The runtime API's socket: JSON lines over a unix stream socket, owned by the master's loop.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "common/unique_fd.hpp"
#include "common/uv_handle.hpp"

namespace molt::master {

// Answers one request; may be called later (a reload answers when the generation serves).
// Calling it after the client went away is harmless. Copyable. A reply from the socket can also
// be handed over across a binary upgrade, so that the next image gives the real answer.
class ApiReply {
 public:
  using Answer = std::function<void(nlohmann::json response)>;
  // Appends the client connection's descriptor to `fds` and returns {"fd", "seq"}; null when
  // the client is gone.
  using HandOver = std::function<nlohmann::json(std::vector<int>& fds)>;

  ApiReply() = default;
  template <class F>
  requires std::is_invocable_v<F&, nlohmann::json> ApiReply(F answer)
      : answer_(std::move(answer)) {}
  ApiReply(Answer answer, HandOver handOver)
      : answer_(std::move(answer)), handOver_(std::move(handOver)) {}

  void operator()(nlohmann::json response) const {
    if (answer_) answer_(std::move(response));
  }
  explicit operator bool() const { return static_cast<bool>(answer_); }
  // The same reply, with `seen` told the response first.
  ApiReply observed(std::function<void(const nlohmann::json&)> seen) && {
    Answer answer = [seen = std::move(seen), inner = std::move(answer_)](nlohmann::json r) {
      seen(r);
      if (inner) inner(std::move(r));
    };
    return ApiReply(std::move(answer), std::move(handOver_));
  }
  nlohmann::json handOver(std::vector<int>& fds) const {
    return handOver_ ? handOver_(fds) : nlohmann::json();
  }

 private:
  Answer answer_;
  HandOver handOver_;
};

// Who sent a request: the peer's credentials (SO_PEERCRED, SO_PEERGROUPS).
struct ApiPeer {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::vector<gid_t> groups;
};

using ApiHandler =
    std::function<void(const nlohmann::json& request, const ApiPeer& peer, ApiReply reply)>;

// Listens on a unix socket (mode 0600), admits peers whose uid (SO_PEERCRED) is root, the
// master's own, or one of `allowedUids` (global.api_users), and hands each request line to the
// handler with the peer's credentials. Responses go back
// in request order, one JSON object per line. A slow client never blocks the loop: its output is
// queued up to a bound, past which the client is dropped. Master process only.
class ApiServer {
 public:
  ApiServer(uv_loop_t* loop, ApiHandler handler) : loop_(loop), handler_(std::move(handler)) {}
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds `path` (replacing a stale socket file). Returns "" or an error naming the call.
  std::string listen(const std::string& path, std::vector<uid_t> allowedUids);
  // Uses a socket that already listens (binary upgrade).
  std::string adopt(common::UniqueFd fd, const std::string& path, std::vector<uid_t> allowedUids);
  // Binary upgrade, in the new image: a client connection the previous image handed over, with
  // the request `seq` of it still to answer. The reply answers that request.
  ApiReply adoptClient(common::UniqueFd fd, std::uint64_t seq);
  const std::string& path() const { return path_; }
  const std::vector<uid_t>& allowedUids() const { return allowedUids_; }
  // Replaces who is admitted (a reload changed global.api_users); clients already connected
  // were checked when they connected.
  void setAllowedUids(std::vector<uid_t> uids) { allowedUids_ = std::move(uids); }
  // The listening socket's descriptor (-1 when not listening).
  int fd() const;
  bool listening() const { return listener_.initialized(); }
  void close();

  class Client;

 private:
  void onConnection();
  void removeClient(Client* client);

  uv_loop_t* loop_;
  ApiHandler handler_;
  std::string path_;
  std::vector<uid_t> allowedUids_;
  common::UvHandle<uv_pipe_t> listener_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::vector<std::shared_ptr<Client>> closed_;  // destroyed on the next idle turn
  common::UvHandle<uv_idle_t> reaper_;
};

}  // namespace molt::master
