#include "common/control.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace molt::common {

std::string ControlMessage::type() const {
  auto it = body.find("type");
  return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int makeControlPair(UniqueFd& masterEnd, UniqueFd& workerEnd) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0) return -errno;
  masterEnd.reset(fds[0]);
  workerEnd.reset(fds[1]);
  return 0;
}

int sendControl(int fd, const nlohmann::json& body, std::span<const int> fds) {
  std::string text = body.dump();
  if (text.size() > kMaxControlMessage || fds.size() > kMaxControlFds) return -EMSGSIZE;
  iovec iov{text.data(), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxControlFds)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) >= 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int recvControl(int fd, ControlMessage& out) {
  std::string text(kMaxControlMessage, '\0');
  iovec iov{text.data(), text.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxControlFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  // Take ownership of every descriptor first, so none leaks whatever else is wrong.
  out.fds.clear();
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      out.fds.emplace_back(received);
    }
  }
  if (n == 0) return 0;
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return -EBADMSG;
  text.resize(static_cast<size_t>(n));
  out.body = nlohmann::json::parse(text, nullptr, false);
  if (!out.body.is_object()) return -EBADMSG;
  return 1;
}

ControlChannel::ControlChannel(uv_loop_t* loop, UniqueFd fd, MessageHandler onMessage,
                               ClosedHandler onClosed)
    : fd_(std::move(fd)), onMessage_(std::move(onMessage)), onClosed_(std::move(onClosed)) {
  if (int rc = uv_poll_init(loop, poll_.get(), fd_.get()); rc < 0) {
    log::error("uv_poll_init(control fd {}): {}", fd_.get(), uv_strerror(rc));
    poll_.close();
    return;
  }
  poll_->data = this;
  updatePoll();
}

ControlChannel::~ControlChannel() {
  *alive_ = false;
}

UniqueFd ControlChannel::release() {
  poll_.close();
  return std::move(fd_);
}

void ControlChannel::send(ControlMessage message) {
  queue_.push_back(std::move(message));
  flush();
}

void ControlChannel::flush() {
  while (!queue_.empty() && fd_) {
    ControlMessage& next = queue_.front();
    std::vector<int> raw;
    for (auto& f : next.fds) raw.push_back(f.get());
    int rc = sendControl(fd_.get(), next.body, raw);
    if (rc == -EAGAIN) break;
    if (rc < 0) {
      log::error("sendmsg(control message '{}' on fd {}): {}", next.body.value("type", "?"),
                 fd_.get(), std::strerror(-rc));
      queue_.pop_front();
      continue;
    }
    queue_.pop_front();
  }
  updatePoll();
}

void ControlChannel::updatePoll() {
  if (!poll_.initialized()) return;
  int events = UV_READABLE | (queue_.empty() ? 0 : UV_WRITABLE);
  uv_poll_start(poll_.get(), events, [](uv_poll_t* handle, int status, int ev) {
    if (auto* self = static_cast<ControlChannel*>(handle->data)) self->onPoll(status, ev);
  });
}

void ControlChannel::fail(const char* what, int err) {
  if (err) log::warn("{} (control fd {}): {}", what, fd_.get(), std::strerror(err));
  poll_.close();
  fd_.reset();
  queue_.clear();
  if (onClosed_) onClosed_();  // may delete this: nothing after
}

void ControlChannel::onPoll(int status, int events) {
  if (status < 0) return fail("uv_poll", -status);
  if (events & UV_WRITABLE) flush();
  if (!(events & UV_READABLE)) return;
  std::shared_ptr<bool> alive = alive_;
  for (int i = 0; i < 64 && *alive && fd_; ++i) {
    ControlMessage message;
    int rc = recvControl(fd_.get(), message);
    if (rc == -EAGAIN) break;
    if (rc == 0) return fail("peer closed", 0);
    if (rc == -EBADMSG) {
      log::warn("control fd {}: dropped a malformed message", fd_.get());
      continue;
    }
    if (rc < 0) return fail("recvmsg", -rc);
    if (onMessage_) onMessage_(std::move(message));
  }
}

}  // namespace molt::common
