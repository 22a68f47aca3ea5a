// The control channel between the master and one worker.
//
// The transport: one AF_UNIX SOCK_SEQPACKET socketpair per worker; the worker's end is its only
// inherited descriptor (fd 3 after exec). Every message is one datagram: a JSON object
// {"type": T, ...} of at most kMaxControlMessage bytes, with 0..kMaxControlFds descriptors attached
// as SCM_RIGHTS. Datagram boundaries make fd/message pairing unambiguous. EOF on the socket means
// the peer is gone. The messages themselves, and the protocol description, are in
// common/control_messages.hpp.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "common/uv_handle.hpp"

namespace molt::common {

inline constexpr size_t kMaxControlMessage = 64 * 1024;
inline constexpr size_t kMaxControlFds = 16;
// A message larger than kMaxControlMessage travels as its JSON text in a sealed memfd, up to
// this size (master -> worker only: a cert.set PEM, a large backend.add).
inline constexpr size_t kMaxLargeControlMessage = 64 * 1024 * 1024;

struct ControlMessage {
  nlohmann::json body;
  std::vector<UniqueFd> fds;
  std::string type() const;
};

// Creates the socketpair (both ends close-on-exec, non-blocking). Returns 0 or -errno.
int makeControlPair(UniqueFd& masterEnd, UniqueFd& workerEnd);

// Sends one message on a non-blocking socket. Returns 0, or -errno (-EAGAIN: socket full).
int sendControl(int fd, const nlohmann::json& body, std::span<const int> fds = {});
// The same, already serialized (`text` is a JSON object's dump).
int sendControlText(int fd, std::string_view text, std::span<const int> fds = {});

// Receives one message. Returns 1 with `out` filled, 0 on EOF, or -errno (-EAGAIN: nothing
// waiting, -EMSGSIZE: longer than kMaxControlMessage or with more than kMaxControlFds
// descriptors, -EBADMSG: not a JSON object). Received descriptors are close-on-exec.
int recvControl(int fd, ControlMessage& out);

// The message as its receiver decodes it: a "large" message (see kMaxLargeControlMessage) is
// replaced by the one its memfd holds. Returns "" or what was wrong. Only a worker calls it: the
// master takes no large message from a worker.
std::string unwrapLargeControl(ControlMessage& message);

// One end of a control socket driven by a libuv loop: delivers each message to `onMessage`,
// queues sends the socket cannot take yet, and reports the peer's disappearance once through
// `onClosed`. A datagram that is no message (oversized, not a JSON object) goes to `onInvalid`
// with what was wrong (without one, it is logged and dropped). Callbacks run on the loop; the
// channel may be destroyed from inside them.
class ControlChannel {
 public:
  using MessageHandler = std::function<void(ControlMessage&&)>;
  using ClosedHandler = std::function<void()>;
  using InvalidHandler = std::function<void(const std::string& what)>;

  ControlChannel(uv_loop_t* loop, UniqueFd fd, MessageHandler onMessage, ClosedHandler onClosed,
                 InvalidHandler onInvalid = {});
  ~ControlChannel();
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  // Queues a message (encoded by common/control_messages.hpp); its descriptors are sent with it
  // (the channel owns them until then). One longer than kMaxControlMessage goes in a memfd
  // (unwrapLargeControl); false, with nothing queued, when it cannot (too large, no memfd).
  bool send(ControlMessage message);
  // Queues a message without descriptors that the caller serialized (`text`: one JSON object,
  // at most kMaxControlMessage bytes; `type` names it in the log). False when it is too long.
  bool sendText(std::string text, std::string_view type);
  int fd() const { return fd_.get(); }
  bool open() const { return poll_.initialized(); }
  // Gives up the socket without closing it (binary upgrade hands it to the new image).
  UniqueFd release();
  // Delivers every message already waiting on the socket now (a peer that exited: what it sent
  // before it died still counts).
  void readWaiting();

 private:
  void onPoll(int status, int events);
  void readSome(std::size_t most);
  void flush();
  void updatePoll();
  void fail(const char* what, int err);

  UniqueFd fd_;
  UvHandle<uv_poll_t> poll_;
  MessageHandler onMessage_;
  ClosedHandler onClosed_;
  InvalidHandler onInvalid_;
  // A message waiting for the socket: serialized once, when it was queued.
  struct Outgoing {
    std::string text;
    std::vector<UniqueFd> fds;
    std::string type;  // for the log
  };
  std::deque<Outgoing> queue_;
  // Cleared by the destructor; a callback frame holds a copy to learn that `this` was deleted.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace molt::common
