#include "master/http_endpoint.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "common/config.hpp"
#include "common/http_status.hpp"
#include "common/log.hpp"
#include "master/listener.hpp"

namespace molt::master {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding ("+" as a space in a query); false on a bad escape.
bool decode(std::string_view in, bool query, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hexValue(in[i + 1]), lo = hexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(query && c == '+' ? ' ' : c);
    }
  }
  return true;
}

bool tokenCharacter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

}  // namespace

std::vector<std::string> HttpRequest::values(std::string_view name) const {
  std::vector<std::string> found;
  for (const auto& [key, value] : query)
    if (key == name) found.push_back(value);
  return found;
}

int HttpEndpoint::parse(std::string_view head, HttpRequest& request) {
  std::size_t lineEnd = head.find('\n');
  if (lineEnd == std::string_view::npos) return 400;
  std::string_view line = head.substr(0, lineEnd);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return 400;
  std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return 400;
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (!std::all_of(method.begin(), method.end(), tokenCharacter)) return 400;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return version.substr(0, 5) == "HTTP/" ? 505 : 400;
  }
  if (target.empty() || target.front() != '/') return 400;
  if (std::any_of(target.begin(), target.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; }))
    return 400;
  // Every header line must be "name: value" (its content is not used).
  for (std::size_t at = lineEnd + 1; at < head.size();) {
    std::size_t end = head.find('\n', at);
    if (end == std::string_view::npos) end = head.size();
    std::string_view h = head.substr(at, end - at);
    if (!h.empty() && h.back() == '\r') h.remove_suffix(1);
    at = end + 1;
    if (h.empty()) break;
    std::size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0 ||
        !std::all_of(h.begin(), h.begin() + static_cast<long>(colon), tokenCharacter))
      return 400;
  }
  request.method = std::string(method);
  std::string_view path = target, query;
  if (std::size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  if (!decode(path, false, request.path)) return 400;
  request.query.clear();
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    std::string key, value;
    if (!decode(pair.substr(0, eq), true, key)) return 400;
    if (eq != std::string_view::npos && !decode(pair.substr(eq + 1), true, value)) return 400;
    request.query.emplace_back(std::move(key), std::move(value));
    if (request.query.size() > 64) return 400;
  }
  if (request.method != "GET" && request.method != "HEAD") return 405;
  return 0;
}

// One connection: reads a head, answers, closes.
class HttpEndpoint::Client {
  // The answer being written: owns its bytes until libuv is done with them, which may be after
  // the client is gone (a write cancelled by the close).
  struct Write {
    uv_write_t req{};
    std::string bytes;
    Client* client = nullptr;
  };

 public:
  explicit Client(HttpEndpoint& owner) : owner_(owner) {}
  ~Client() {
    if (pending_) pending_->client = nullptr;
  }

  bool start(uv_stream_t* listener) {
    uv_tcp_init(owner_.loop_, tcp_.get());
    tcp_->data = this;
    if (uv_accept(listener, tcp_.stream()) < 0) return false;
    uv_timer_init(owner_.loop_, timer_.get());
    timer_->data = this;
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
          if (auto* self = static_cast<Client*>(t->data)) self->answerError(408);
        },
        kTimeoutMs, 0);
    int rc = uv_read_start(
        tcp_.stream(),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* self = static_cast<Client*>(h->data);
          buf->base = self ? self->chunk_ : nullptr;
          buf->len = self ? sizeof self->chunk_ : 0;
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
          if (auto* self = static_cast<Client*>(s->data)) self->onRead(n);
        });
    return rc == 0;
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.close();
    tcp_.close();
    owner_.removeClient(this);
  }

 private:
  void onRead(ssize_t n) {
    if (n == 0) return;
    if (n < 0) return close();
    if (answered_) return;
    input_.append(chunk_, static_cast<std::size_t>(n));
    std::size_t end = input_.find("\r\n\r\n");
    std::size_t endLength = 4;
    if (end == std::string::npos) {
      end = input_.find("\n\n");
      endLength = 2;
    }
    if (end == std::string::npos) {
      if (input_.size() > kMaxHead) answerError(431);
      return;
    }
    if (end + endLength > kMaxHead) return answerError(431);
    HttpRequest request;
    if (int status = parse(std::string_view(input_).substr(0, end + endLength), request))
      return answerError(status);
    HttpResponse response;
    try {
      response = owner_.handler_(request);
    } catch (const std::exception& e) {
      common::log::error("metrics: {} {}: {}", request.method, request.path, e.what());
      response = {500, "text/plain; charset=utf-8", "internal error\n"};
    }
    answer(response, request.method == "HEAD");
  }

  void answerError(int status) {
    if (answered_) return;
    answer({status, "text/plain; charset=utf-8",
            fmt::format("{} {}\n", status, common::reasonPhrase(status))},
           false);
  }

  void answer(const HttpResponse& response, bool headOnly) {
    answered_ = true;
    uv_read_stop(tcp_.stream());
    out_ = fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: "
        "no-store\r\nConnection: close\r\n{}\r\n",
        response.status, common::reasonPhrase(response.status), response.contentType,
        response.body.size(), response.status == 405 ? "Allow: GET, HEAD\r\n" : "");
    auto* write = new Write;
    write->bytes = std::move(out_);
    if (!headOnly) write->bytes += response.body;
    write->client = this;
    uv_buf_t buf = uv_buf_init(write->bytes.data(), static_cast<unsigned>(write->bytes.size()));
    int rc = uv_write(&write->req, tcp_.stream(), &buf, 1, [](uv_write_t* req, int) {
      auto* done = reinterpret_cast<Write*>(req);
      if (Client* client = done->client) {
        client->pending_ = nullptr;
        client->close();
      }
      delete done;
    });
    if (rc < 0) {
      delete write;
      return close();
    }
    pending_ = write;
  }

  HttpEndpoint& owner_;
  common::UvHandle<uv_tcp_t> tcp_;
  common::UvHandle<uv_timer_t> timer_;
  Write* pending_ = nullptr;
  char chunk_[4096];
  std::string input_, out_;
  bool answered_ = false, closed_ = false;
};

HttpEndpoint::HttpEndpoint(uv_loop_t* loop, Handler handler)
    : loop_(loop), handler_(std::move(handler)) {}

HttpEndpoint::~HttpEndpoint() {
  close();
}

std::string HttpEndpoint::listen(const common::SocketAddress& address) {
  common::BindConfig bind;
  bind.address = address;
  bind.text = address.text();
  bind.backlog = 64;
  std::string error;
  auto listener = bindListener(bind, error);
  if (!listener) return error;
  return adopt(std::move(listener->fd));
}

std::string HttpEndpoint::adopt(common::UniqueFd fd) {
  close();
  listener_ = common::UvHandle<uv_tcp_t>();
  uv_tcp_init(loop_, listener_.get());
  if (int rc = uv_tcp_open(listener_.get(), fd.get()); rc < 0)
    return std::string("uv_tcp_open(metrics): ") + uv_strerror(rc);
  fd.release();
  address_.length = sizeof address_.storage;
  uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address_.storage),
                     reinterpret_cast<int*>(&address_.length));
  listener_->data = this;
  int rc = uv_listen(listener_.stream(), 64, [](uv_stream_t* s, int status) {
    if (auto* self = static_cast<HttpEndpoint*>(s->data); self && status == 0) self->onConnection();
  });
  if (rc < 0) {
    listener_.close();
    return std::string("uv_listen(metrics): ") + uv_strerror(rc);
  }
  return {};
}

int HttpEndpoint::fd() const {
  int fd = -1;
  if (listener_.initialized()) uv_fileno(listener_.base(), &fd);
  return fd;
}

void HttpEndpoint::onConnection() {
  auto client = std::make_unique<Client>(*this);
  Client* raw = client.get();
  clients_.push_back(std::move(client));
  // Over the bound, the newest connection is accepted and closed at once.
  if (!raw->start(listener_.stream()) || clients_.size() > kMaxClients) raw->close();
}

void HttpEndpoint::removeClient(Client* client) {
  auto it = std::find_if(clients_.begin(), clients_.end(),
                         [client](const auto& c) { return c.get() == client; });
  if (it == clients_.end()) return;
  closed_.push_back(std::move(*it));
  clients_.erase(it);
  if (!reaper_.initialized()) {
    uv_idle_init(loop_, reaper_.get());
    reaper_->data = this;
  }
  uv_idle_start(reaper_.get(), [](uv_idle_t* h) {
    uv_idle_stop(h);
    if (auto* self = static_cast<HttpEndpoint*>(h->data)) self->closed_.clear();
  });
}

void HttpEndpoint::close() {
  listener_.close();
  auto clients = std::move(clients_);
  clients_.clear();
  for (auto& c : clients) {
    Client* raw = c.get();
    clients_.push_back(std::move(c));
    raw->close();
  }
}

}  // namespace molt::master
