#include "master/api_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "common/log.hpp"

namespace molt::master {
namespace {

constexpr size_t kMaxLine = 1 << 20;      // a request line longer than this is refused
constexpr size_t kMaxQueued = 16u << 20;  // a client not reading past this is dropped
constexpr size_t kReadChunk = 64 * 1024;

}  // namespace

// One connected client: splits lines, numbers requests, writes answers back in order.
class ApiServer::Client : public std::enable_shared_from_this<Client> {
 public:
  Client(ApiServer& server) : server_(server) {}

  bool start(uv_stream_t* listener) {
    uv_pipe_init(server_.loop_, pipe_.get(), 0);
    pipe_->data = this;
    if (uv_accept(listener, pipe_.stream()) < 0) return false;
    if (!peerAllowed()) return false;
    uv_read_start(
        pipe_.stream(),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char chunk[kReadChunk];  // copied out at once; the loop is single-threaded
          *buf = uv_buf_init(chunk, sizeof chunk);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          if (auto* self = static_cast<Client*>(s->data)) self->onRead(n, buf);
        });
    return true;
  }

  void closeNow() {
    if (closed_) return;
    closed_ = true;
    pipe_.close();
    server_.removeClient(this);  // may destroy this
  }

 private:
  bool peerAllowed() {
    int fd = -1;
    uv_fileno(pipe_.base(), &fd);
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return false;
    peer_.uid = cred.uid;
    peer_.gid = cred.gid;
    peer_.pid = cred.pid;
    gid_t groups[256];
    socklen_t groupsLen = sizeof groups;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &groupsLen) == 0)
      peer_.groups.assign(groups, groups + groupsLen / sizeof(gid_t));
    const auto& allowed = server_.allowedUids_;
    if (cred.uid == 0 || cred.uid == geteuid() ||
        std::find(allowed.begin(), allowed.end(), cred.uid) != allowed.end())
      return true;
    common::log::warn("api: refused a client with uid {} (pid {})", cred.uid, cred.pid);
    std::string refusal =
        nlohmann::json{{"ok", false},
                       {"error", "permission denied for uid " + std::to_string(cred.uid) +
                                     " (root, the master's user and global.api_users may)"}}
            .dump() +
        "\n";
    ssize_t ignored = ::write(fd, refusal.data(), refusal.size());
    (void)ignored;
    return false;
  }

  void onRead(ssize_t n, const uv_buf_t* buf) {
    if (n < 0) return closeNow();
    input_.append(buf->base, static_cast<size_t>(n));
    size_t newline;
    while (!closed_ && (newline = input_.find('\n')) != std::string::npos) {
      std::string line = input_.substr(0, newline);
      input_.erase(0, newline + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      dispatch(line);
    }
    if (input_.size() > kMaxLine) {
      answer(nextSeq_++, {{"ok", false}, {"error", "request line longer than 1 MiB"}});
      input_.clear();
    }
  }

  void dispatch(const std::string& line) {
    uint64_t seq = nextSeq_++;
    auto request = nlohmann::json::parse(line, nullptr, false);
    if (request.is_discarded()) return answer(seq, {{"ok", false}, {"error", "malformed JSON"}});
    if (!request.is_object())
      return answer(seq, {{"ok", false}, {"error", "a request must be a JSON object"}});
    server_.handler_(request, peer_, replyFor(seq));
  }

 public:
  ApiReply replyFor(uint64_t seq) {
    std::weak_ptr<Client> weak = shared_from_this();
    return ApiReply(
        [weak, seq](nlohmann::json response) {
          if (auto self = weak.lock()) self->answer(seq, std::move(response));
        },
        [weak, seq](std::vector<int>& fds) -> nlohmann::json {
          auto self = weak.lock();
          int fd = -1;
          if (!self || self->closed_ || uv_fileno(self->pipe_.base(), &fd) != 0) return nullptr;
          fds.push_back(fd);
          return {{"fd", fd}, {"seq", seq}};
        });
  }

  // A connection the previous image handed over: request `seq` is the next to answer.
  bool adopt(common::UniqueFd fd, uint64_t seq) {
    uv_pipe_init(server_.loop_, pipe_.get(), 0);
    pipe_->data = this;
    if (uv_pipe_open(pipe_.get(), fd.get()) < 0) return false;
    fd.release();
    if (!peerAllowed()) return false;  // credentials read again: the peer is the same process
    nextSeq_ = nextToWrite_ = seq;
    ++nextSeq_;
    uv_read_start(
        pipe_.stream(),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char chunk[kReadChunk];
          *buf = uv_buf_init(chunk, sizeof chunk);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          if (auto* self = static_cast<Client*>(s->data)) self->onRead(n, buf);
        });
    return true;
  }

 private:
  // Answers may complete out of order (a reload takes a while); they are written in order.
  void answer(uint64_t seq, nlohmann::json response) {
    if (closed_) return;
    ready_[seq] = response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    while (!ready_.empty() && ready_.begin()->first == nextToWrite_) {
      write(std::move(ready_.begin()->second));
      ready_.erase(ready_.begin());
      ++nextToWrite_;
    }
  }

  void write(std::string text) {
    if (pipe_->write_queue_size + text.size() > kMaxQueued) {
      common::log::warn("api: dropping a client that does not read its answers");
      return closeNow();
    }
    struct Request {
      uv_write_t req;
      std::string text;
    };
    auto* r = new Request{{}, std::move(text)};
    uv_buf_t out = uv_buf_init(r->text.data(), static_cast<unsigned>(r->text.size()));
    if (uv_write(&r->req, pipe_.stream(), &out, 1,
                 [](uv_write_t* req, int) { delete reinterpret_cast<Request*>(req); }) < 0) {
      delete r;
      closeNow();
    }
  }

  ApiServer& server_;
  ApiPeer peer_;
  common::UvHandle<uv_pipe_t> pipe_;
  std::string input_;
  uint64_t nextSeq_ = 0, nextToWrite_ = 0;
  std::map<uint64_t, std::string> ready_;
  bool closed_ = false;
};

ApiServer::~ApiServer() {
  close();
}

std::string ApiServer::listen(const std::string& path, std::vector<uid_t> allowedUids) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return "api_socket " + path + ": path too long";
  common::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return std::string("socket(api): ") + std::strerror(errno);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // A socket file left by a previous run is replaced; anything else at the path is an error.
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path.c_str());
  // 0600 from the first instant: no window in which another user could connect.
  mode_t old = umask(0177);
  int rc = bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc < 0) return "bind(" + path + "): " + std::strerror(errno);
  if (::listen(fd.get(), 64) < 0) return "listen(" + path + "): " + std::strerror(errno);
  return adopt(std::move(fd), path, std::move(allowedUids));
}

std::string ApiServer::adopt(common::UniqueFd fd, const std::string& path,
                             std::vector<uid_t> allowedUids) {
  close();
  path_ = path;
  allowedUids_ = std::move(allowedUids);
  listener_ = common::UvHandle<uv_pipe_t>();
  uv_pipe_init(loop_, listener_.get(), 0);
  if (int rc = uv_pipe_open(listener_.get(), fd.get()); rc < 0)
    return std::string("uv_pipe_open(api): ") + uv_strerror(rc);
  fd.release();
  listener_->data = this;
  int rc = uv_listen(listener_.stream(), 64, [](uv_stream_t* s, int status) {
    if (auto* self = static_cast<ApiServer*>(s->data); self && status == 0) self->onConnection();
  });
  if (rc < 0) return std::string("uv_listen(api): ") + uv_strerror(rc);
  return {};
}

int ApiServer::fd() const {
  int fd = -1;
  if (listener_.initialized()) uv_fileno(listener_.base(), &fd);
  return fd;
}

void ApiServer::onConnection() {
  auto client = std::make_shared<Client>(*this);
  clients_.push_back(client);
  if (!client->start(listener_.stream())) client->closeNow();
}

void ApiServer::removeClient(Client* client) {
  auto it = std::find_if(clients_.begin(), clients_.end(),
                         [client](const auto& c) { return c.get() == client; });
  if (it == clients_.end()) return;
  // Destroyed after the current callback unwinds: the caller is one of its methods.
  closed_.push_back(std::move(*it));
  clients_.erase(it);
  if (!reaper_.initialized()) {
    uv_idle_init(loop_, reaper_.get());
    reaper_->data = this;
  }
  uv_idle_start(reaper_.get(), [](uv_idle_t* h) {
    uv_idle_stop(h);
    if (auto* self = static_cast<ApiServer*>(h->data)) self->closed_.clear();
  });
}

ApiReply ApiServer::adoptClient(common::UniqueFd fd, std::uint64_t seq) {
  auto client = std::make_shared<Client>(*this);
  clients_.push_back(client);
  if (!client->adopt(std::move(fd), seq)) {
    client->closeNow();
    return {};
  }
  return client->replyFor(seq);
}

void ApiServer::close() {
  listener_.close();
  auto clients = std::move(clients_);
  clients_.clear();
  for (auto& c : clients) c->closeNow();
}

}  // namespace molt::master
