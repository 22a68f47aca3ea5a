#include "common/control.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "common/log.hpp"

namespace molt::common {

namespace {

constexpr const char* kLargeType = "large";

// A sealed memfd holding `text`: the receiver can neither change nor grow what it reads.
UniqueFd largeMessageFd(const std::string& text, std::string& error) {
  if (text.size() > kMaxLargeControlMessage) {
    error = "longer than " + std::to_string(kMaxLargeControlMessage) + " bytes";
    return UniqueFd();
  }
  UniqueFd fd(memfd_create("molt-control", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) {
    error = std::string("memfd_create: ") + std::strerror(errno);
    return fd;
  }
  std::string_view rest = text;
  while (!rest.empty()) {
    ssize_t n = write(fd.get(), rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = std::string("write(memfd): ") + std::strerror(errno);
      return UniqueFd();
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    error = std::string("fcntl(F_ADD_SEALS): ") + std::strerror(errno);
    return UniqueFd();
  }
  return fd;
}

}  // namespace

std::string unwrapLargeControl(ControlMessage& message) {
  if (message.type() != kLargeType) return "";
  if (message.fds.empty()) return "large message without its memfd";
  UniqueFd memfd = std::move(message.fds.back());
  message.fds.pop_back();
  struct stat st {};
  if (fstat(memfd.get(), &st) < 0)
    return std::string("fstat(large message): ") + std::strerror(errno);
  if (st.st_size <= 0 || static_cast<size_t>(st.st_size) > kMaxLargeControlMessage)
    return "large message of " + std::to_string(st.st_size) + " bytes";
  // Only a sealed memfd: nobody can change the text while it is parsed.
  int seals = fcntl(memfd.get(), F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_WRITE)) return "large message in an unsealed file";
  std::string text(static_cast<size_t>(st.st_size), '\0');
  if (pread(memfd.get(), text.data(), text.size(), 0) != st.st_size)
    return std::string("pread(large message): ") + std::strerror(errno);
  message.body = nlohmann::json::parse(text, nullptr, false);
  if (!message.body.is_object() || message.type() == kLargeType)
    return "large message that is not a JSON message";
  return "";
}

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
  return sendControlText(fd, body.dump(), fds);
}

int sendControlText(int fd, std::string_view text, std::span<const int> fds) {
  if (text.size() > kMaxControlMessage || fds.size() > kMaxControlFds) return -EMSGSIZE;
  iovec iov{const_cast<char*>(text.data()), text.size()};
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
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return -EMSGSIZE;
  text.resize(static_cast<size_t>(n));
  out.body = nlohmann::json::parse(text, nullptr, false);
  if (!out.body.is_object()) return -EBADMSG;
  return 1;
}

ControlChannel::ControlChannel(uv_loop_t* loop, UniqueFd fd, MessageHandler onMessage,
                               ClosedHandler onClosed, InvalidHandler onInvalid)
    : fd_(std::move(fd)),
      onMessage_(std::move(onMessage)),
      onClosed_(std::move(onClosed)),
      onInvalid_(std::move(onInvalid)) {
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

bool ControlChannel::send(ControlMessage message) {
  std::string text = message.body.dump();
  if (text.size() > kMaxControlMessage) {
    std::string error;
    UniqueFd memfd = largeMessageFd(text, error);
    if (!memfd) {
      log::error("control message '{}' ({} bytes) on fd {}: {}", message.type(), text.size(),
                 fd_.get(), error);
      return false;
    }
    text = nlohmann::json{{"type", kLargeType}}.dump();
    message.fds.push_back(std::move(memfd));
  }
  queue_.push_back(Outgoing{std::move(text), std::move(message.fds), message.type()});
  flush();
  return true;
}

bool ControlChannel::sendText(std::string text, std::string_view type) {
  if (text.size() > kMaxControlMessage) {
    log::error("control message '{}' ({} bytes) on fd {}: too long", type, text.size(), fd_.get());
    return false;
  }
  queue_.push_back(Outgoing{std::move(text), {}, std::string(type)});
  flush();
  return true;
}

void ControlChannel::flush() {
  while (!queue_.empty() && fd_) {
    Outgoing& next = queue_.front();
    std::vector<int> raw;
    for (auto& f : next.fds) raw.push_back(f.get());
    int rc = sendControlText(fd_.get(), next.text, raw);
    if (rc == -EAGAIN) break;
    if (rc < 0) {
      log::error("sendmsg(control message '{}' on fd {}): {}", next.type, fd_.get(),
                 std::strerror(-rc));
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

void ControlChannel::readWaiting() {
  if (poll_.initialized()) readSome(std::numeric_limits<std::size_t>::max());
}

void ControlChannel::onPoll(int status, int events) {
  if (status < 0) return fail("uv_poll", -status);
  if (events & UV_WRITABLE) flush();
  if (events & UV_READABLE) readSome(64);  // then the loop's other events get their turn
}

void ControlChannel::readSome(std::size_t most) {
  std::shared_ptr<bool> alive = alive_;
  for (std::size_t i = 0; i < most && *alive && fd_; ++i) {
    ControlMessage message;
    int rc = recvControl(fd_.get(), message);
    if (rc == -EAGAIN) break;
    if (rc == 0) return fail("peer closed", 0);
    if (rc == -EBADMSG || rc == -EMSGSIZE) {
      std::string what = rc == -EBADMSG
                             ? "a datagram that is not a JSON object"
                             : "a datagram over " + std::to_string(kMaxControlMessage) +
                                   " bytes or " + std::to_string(kMaxControlFds) + " descriptors";
      if (!onInvalid_) {
        log::warn("control fd {}: dropped {}", fd_.get(), what);
        continue;
      }
      onInvalid_(what);  // may delete this
      continue;
    }
    if (rc < 0) return fail("recvmsg", -rc);
    if (onMessage_) onMessage_(std::move(message));
  }
}

}  // namespace molt::common
