#include "common/redis.hpp"

#include <arpa/inet.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/un.h>

#include <ctime>
#include <memory>
#include <vector>

#include "common/config.hpp"
#include "common/log.hpp"

namespace molt::common {
namespace {

std::string numericHost(const SocketAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.family() == AF_INET6) {
    inet_ntop(AF_INET6, &address.storage.sin6_addr, text, sizeof text);
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address.sa())->sin_addr, text,
              sizeof text);
  }
  return text;
}

}  // namespace

std::optional<RedisTarget> parseRedisTarget(std::string_view text, std::string& error) {
  RedisTarget target;
  target.text = std::string(text);
  if (text.rfind("unix:", 0) == 0) {
    target.unixPath = std::string(text.substr(5));
    if (target.unixPath.empty() || target.unixPath.front() != '/') {
      error = "a unix socket must be an absolute path (\"unix:/run/redis/redis.sock\")";
      return std::nullopt;
    }
    if (target.unixPath.size() >= sizeof(sockaddr_un::sun_path)) {
      error = "unix socket path too long";
      return std::nullopt;
    }
    return target;
  }
  std::optional<SocketAddress> address = parseAddress(text, AddressUse::Connect, error);
  if (!address) return std::nullopt;
  target.address = *address;
  return target;
}

RedisTarget fleetTarget(const FleetConfig& config) {
  std::string error;
  std::optional<RedisTarget> target = parseRedisTarget(config.redis, error);
  RedisTarget out = target ? *target : RedisTarget{config.redis, {}, {}, {}};
  out.password = config.password;
  return out;
}

// What a command carries through hiredis: its callback, and whether the link still exists when
// hiredis answers (it also answers, with nullptr, while the link is being destroyed).
struct RedisLink::Pending {
  std::weak_ptr<bool> alive;
  RedisLink* link;
  Done done;
};

RedisLink::RedisLink(uv_loop_t* loop, RedisTarget target, std::string name)
    : loop_(loop), target_(std::move(target)), name_(std::move(name)) {
  uv_timer_init(loop_, retryTimer_.get());
  retryTimer_->data = this;
  uv_timer_init(loop_, stallTimer_.get());
  stallTimer_->data = this;
}

RedisLink::~RedisLink() {
  alive_.reset();
  phase_ = RedisPhase::Closed;
  if (redisAsyncContext* context = context_) {
    context_ = nullptr;
    context->data = nullptr;
    redisAsyncFree(context);  // deferred by hiredis when called from inside one of its callbacks
  }
}

void RedisLink::start() noexcept {
  if (phase_ != RedisPhase::Closed || !alive_) return;
  connect();
}

void RedisLink::connect() noexcept {
  phase_ = RedisPhase::Connecting;
  redisAsyncContext* context =
      target_.unixPath.empty()
          ? redisAsyncConnect(numericHost(target_.address).c_str(), target_.address.port())
          : redisAsyncConnectUnix(target_.unixPath.c_str());
  if (context == nullptr) return lost("connect: out of memory");
  if (context->err != 0) {
    std::string why = std::string("connect: ") + context->errstr;
    redisAsyncFree(context);
    return lost(why);
  }
  if (redisLibuvAttach(context, loop_) != REDIS_OK) {
    redisAsyncFree(context);
    return lost("connect: cannot watch the socket");
  }
  context->data = this;
  context_ = context;
  redisAsyncSetConnectCallback(context, onConnect);
  redisAsyncSetDisconnectCallback(context, onDisconnect);
  // hiredis queues the first command until the socket connects. AUTH when there is a password,
  // else PING: either way the link is Ready only once the server has answered.
  std::string_view auth[] = {"AUTH", target_.password};
  std::string_view ping[] = {"PING"};
  bool sent = target_.password.empty()
                  ? send(ping, [this](const redisReply* r) { authenticated(r); })
                  : send(auth, [this](const redisReply* r) { authenticated(r); });
  if (!sent) return drop("connect: out of memory");
  uv_timer_start(
      retryTimer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<RedisLink*>(t->data);
        if (self == nullptr) return;
        if (self->phase_ == RedisPhase::Connecting) {
          self->drop("connect: no answer within " + std::to_string(kConnectTimeoutMs) + " ms");
        } else if (self->phase_ == RedisPhase::Waiting) {
          self->connect();
        }
      },
      kConnectTimeoutMs, 0);
}

void RedisLink::authenticated(const redisReply* reply) noexcept {
  if (reply == nullptr) return;  // the connection went first; lost() has been told
  if (reply->type == REDIS_REPLY_ERROR) {
    return drop(std::string(target_.password.empty() ? "PING: " : "AUTH: ") +
                std::string(reply->str, reply->len));
  }
  uv_timer_stop(retryTimer_.get());
  phase_ = RedisPhase::Ready;
  problem_.clear();
  backoffMs_ = kFirstBackoffMs;
  since_ = std::time(nullptr);
  if (loggedDown_) log::info("{}: redis {}: connected again", name_, target_.text);
  loggedDown_ = false;
  uv_timer_start(
      stallTimer_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<RedisLink*>(t->data)) self->checkStall();
      },
      kStallMs / 4, kStallMs / 4);
  if (onReady) onReady();
}

void RedisLink::checkStall() noexcept {
  if (phase_ != RedisPhase::Ready || sentAt_.empty()) return;
  if (uv_now(loop_) - sentAt_.front() >= kStallMs) {
    drop("no answer for " + std::to_string(kStallMs) + " ms");
  }
}

// The link gives up on its connection: hiredis answers every command still waiting with nullptr
// (now, or when the callback it is in returns) and closes the socket.
void RedisLink::drop(std::string why) noexcept {
  if (redisAsyncContext* context = context_) {
    context_ = nullptr;
    context->data = nullptr;  // its connect and disconnect callbacks are no longer ours
    redisAsyncFree(context);
  }
  lost(std::move(why));
}

// The connection is gone (hiredis frees it, or drop() did).
void RedisLink::lost(std::string why) noexcept {
  context_ = nullptr;
  sentAt_.clear();
  uv_timer_stop(stallTimer_.get());
  bool wasReady = phase_ == RedisPhase::Ready;
  phase_ = RedisPhase::Waiting;
  if (wasReady || since_ == 0) since_ = std::time(nullptr);
  problem_ = std::move(why);
  if (!loggedDown_) {
    log::warn("{}: redis {}: {}; retrying with backoff", name_, target_.text, problem_);
    loggedDown_ = true;
  }
  scheduleRetry();
  if (wasReady && onLost) onLost();
}

void RedisLink::scheduleRetry() noexcept {
  uv_timer_start(
      retryTimer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<RedisLink*>(t->data);
        if (self != nullptr && self->phase_ == RedisPhase::Waiting) self->connect();
      },
      backoffMs_, 0);
  backoffMs_ = std::min(backoffMs_ * 2, kMaxBackoffMs);
}

void RedisLink::onConnect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<RedisLink*>(context->data);
  if (self == nullptr || status == REDIS_OK) return;
  // hiredis frees the context when this returns.
  self->context_ = nullptr;
  self->lost(std::string("connect: ") + (context->errstr[0] ? context->errstr : "failed"));
}

void RedisLink::onDisconnect(const redisAsyncContext* context, int) {
  auto* self = static_cast<RedisLink*>(context->data);
  if (self == nullptr) return;
  self->context_ = nullptr;
  self->lost(context->err != 0 ? std::string("connection lost: ") + context->errstr
                               : std::string("connection closed by the server"));
}

void RedisLink::onReply(redisAsyncContext*, void* reply, void* data) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(data));
  if (pending->alive.expired()) return;
  RedisLink* self = pending->link;
  if (reply != nullptr && !self->sentAt_.empty()) self->sentAt_.pop_front();
  pending->done(static_cast<const redisReply*>(reply));
}

bool RedisLink::command(std::span<const std::string_view> args, Done done) noexcept {
  return ready() && send(args, std::move(done));
}

bool RedisLink::send(std::span<const std::string_view> args, Done done) noexcept {
  if (context_ == nullptr || args.empty()) return false;
  try {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (std::string_view a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto pending = std::make_unique<Pending>(Pending{alive_, this, std::move(done)});
    if (redisAsyncCommandArgv(context_, onReply, pending.get(), static_cast<int>(argv.size()),
                              argv.data(), lengths.data()) != REDIS_OK) {
      return false;
    }
    pending.release();
    sentAt_.push_back(uv_now(loop_));
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace molt::common
