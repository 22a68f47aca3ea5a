#include "master/health_check.hpp"

#include <algorithm>
#include <random>

#include "common/log.hpp"

namespace molt::master {
namespace {

// Enough for "HTTP/1.1 200 OK\r\n" with room for a long reason phrase; nothing more is read.
constexpr size_t kStatusLineMax = 512;

std::string keyOf(const CheckTarget& t) {
  return t.backend + "/" + t.server;
}

// Parses "HTTP/1.x NNN ..." and returns NNN, or -1.
int statusOf(const std::string& line) {
  if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ') return -1;
  int status = 0;
  for (int i = 9; i < 12; ++i) {
    if (line[static_cast<size_t>(i)] < '0' || line[static_cast<size_t>(i)] > '9') return -1;
    status = status * 10 + (line[static_cast<size_t>(i)] - '0');
  }
  return status;
}

}  // namespace

// One check in flight: a socket, a timer and (http) a few hundred bytes of response. Deletes
// itself after reporting.
class HealthChecker::Probe {
 public:
  using Done = std::function<void(bool ok, std::string reason)>;

  Probe(uv_loop_t* loop, const CheckTarget& target, Done done)
      : target_(target), done_(std::move(done)) {
    uv_tcp_init(loop, tcp_.get());
    uv_timer_init(loop, timer_.get());
    tcp_->data = this;
    timer_->data = this;
  }

  void start() {
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
          auto* self = static_cast<Probe*>(t->data);
          if (self)
            self->finish(false, "timed out after " +
                                    std::to_string(self->target_.check.timeout.count()) + " ms");
        },
        static_cast<uint64_t>(target_.check.timeout.count()), 0);
    auto* req = new uv_connect_t{};
    int rc = uv_tcp_connect(req, tcp_.get(), target_.address.sa(), [](uv_connect_t* r, int status) {
      auto* self = static_cast<Probe*>(r->handle->data);
      delete r;
      if (self) self->onConnected(status);
    });
    if (rc < 0) {
      delete req;
      finish(false, uv_strerror(rc));
    }
  }

 private:
  void onConnected(int status) {
    if (status < 0) return finish(false, uv_strerror(status));
    if (target_.check.type == common::CheckType::Tcp) return finish(true, "connected");
    const auto& c = target_.check;
    request_ = c.method + " " + c.path +
               " HTTP/1.1\r\nHost: " + (c.host.empty() ? target_.address.text() : c.host) +
               "\r\nUser-Agent: molt-health-check\r\nConnection: close\r\n\r\n";
    uv_buf_t buf = uv_buf_init(request_.data(), static_cast<unsigned>(request_.size()));
    auto* w = new uv_write_t{};
    uv_write(w, tcp_.stream(), &buf, 1, [](uv_write_t* req, int status) {
      auto* self = static_cast<Probe*>(req->handle->data);
      delete req;
      if (self && status < 0) self->finish(false, uv_strerror(status));
    });
    uv_read_start(
        tcp_.stream(),
        [](uv_handle_t* h, size_t, uv_buf_t* out) {
          auto* self = static_cast<Probe*>(h->data);
          *out = uv_buf_init(self->chunk_, sizeof self->chunk_);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
          if (auto* self = static_cast<Probe*>(s->data)) self->onRead(n, b);
        });
  }

  void onRead(ssize_t n, const uv_buf_t* buf) {
    if (n > 0) response_.append(buf->base, static_cast<size_t>(n));
    auto eol = response_.find("\r\n");
    if (eol == std::string::npos && n >= 0 && response_.size() < kStatusLineMax) return;
    int status = statusOf(response_.substr(0, eol));
    if (status < 0)
      return finish(
          false, n < 0 && response_.empty() ? "closed without a response" : "not an HTTP response");
    bool ok = status >= target_.check.statusMin && status <= target_.check.statusMax;
    finish(ok, "status " + std::to_string(status));
  }

  void finish(bool ok, std::string reason) {
    Done done = std::move(done_);
    delete this;  // closes the socket and timer; nothing of `this` is used below
    done(ok, std::move(reason));
  }

  const CheckTarget target_;
  Done done_;
  common::UvHandle<uv_tcp_t> tcp_;
  common::UvHandle<uv_timer_t> timer_;
  std::string request_, response_;
  char chunk_[kStatusLineMax];
};

HealthChecker::HealthChecker(uv_loop_t* loop, Listener onChange, size_t maxInFlight)
    : loop_(loop), onChange_(std::move(onChange)), maxInFlight_(std::max<size_t>(1, maxInFlight)) {
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
}

HealthChecker::~HealthChecker() {
  *alive_ = false;
}

std::vector<CheckTarget> HealthChecker::targetsOf(const common::Config& config) {
  std::vector<CheckTarget> targets;
  for (const auto& backend : config.backends)
    for (const auto& server : backend.servers) {
      const common::CheckConfig* check = backend.checkOf(server);
      if (!check || server.disabled) continue;  // disabled servers are never contacted
      targets.push_back({backend.name, server.name, server.address, *check});
    }
  return targets;
}

void HealthChecker::setTargets(std::vector<CheckTarget> targets) {
  std::unordered_map<std::string, State> next;
  next.reserve(targets.size());
  std::mt19937_64 spread(std::random_device{}());
  for (auto& target : targets) {
    std::string key = keyOf(target);
    State state;
    if (auto old = targets_.find(key); old != targets_.end()) {
      state.up = old->second.up;  // kept by name: a down server stays down until it rises
      state.successes = old->second.successes;
      state.failures = old->second.failures;
    }
    state.target = std::move(target);
    state.epoch = nextEpoch_++;
    auto [it, inserted] = next.emplace(std::move(key), std::move(state));
    if (!inserted) continue;
    // The first check of each target lands at a random point of its interval.
    auto interval = static_cast<uint64_t>(it->second.target.check.interval.count());
    schedule(it->first, it->second, interval ? spread() % interval : 0);
  }
  targets_ = std::move(next);  // stale heap entries are skipped by their epoch
  waiting_.clear();
  armTimer();
}

void HealthChecker::assume(const std::string& backend, const std::string& server, bool up) {
  auto it = targets_.find(backend + "/" + server);
  if (it == targets_.end()) return;
  it->second.up = up;
  it->second.successes = it->second.failures = 0;
}

bool HealthChecker::isUp(const std::string& backend, const std::string& server) const {
  auto it = targets_.find(backend + "/" + server);
  return it == targets_.end() || it->second.up;
}

std::vector<std::pair<std::string, std::string>> HealthChecker::down() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, state] : targets_)
    if (!state.up) out.emplace_back(state.target.backend, state.target.server);
  return out;
}

void HealthChecker::schedule(const std::string& key, State& state, uint64_t delayMs) {
  due_.push({uv_now(loop_) + delayMs, key, state.epoch});
}

void HealthChecker::armTimer() {
  if (due_.empty()) {
    uv_timer_stop(timer_.get());
    return;
  }
  uint64_t now = uv_now(loop_);
  uint64_t at = due_.top().at;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<HealthChecker*>(t->data)) self->onTimer();
      },
      at > now ? at - now : 0, 0);
}

void HealthChecker::onTimer() {
  uint64_t now = uv_now(loop_);
  while (!due_.empty() && due_.top().at <= now) {
    waiting_.push_back(due_.top());
    due_.pop();
  }
  size_t started = 0;
  for (; started < waiting_.size() && inFlight_ < maxInFlight_; ++started) {
    const Due& d = waiting_[started];
    auto it = targets_.find(d.key);
    if (it == targets_.end() || it->second.epoch != d.epoch || it->second.running) continue;
    startProbe(it->first, it->second);
  }
  waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(started));
  armTimer();
}

void HealthChecker::startProbe(const std::string& key, State& state) {
  state.running = true;
  ++inFlight_;
  peakInFlight_ = std::max(peakInFlight_, inFlight_);
  uint64_t begun = uv_now(loop_), epoch = state.epoch;
  std::weak_ptr<bool> alive = alive_;
  auto* probe =
      new Probe(loop_, state.target, [this, alive, key, epoch, begun](bool ok, std::string reason) {
        if (alive.expired()) return;
        finish(key, epoch, ok, std::move(reason), uv_now(loop_) - begun);
      });
  probe->start();
}

void HealthChecker::finish(const std::string& key, uint64_t epoch, bool ok, std::string reason,
                           uint64_t ms) {
  --inFlight_;
  auto it = targets_.find(key);
  if (it == targets_.end() || it->second.epoch != epoch) {
    if (!waiting_.empty()) onTimer();
    return;  // removed or replaced by a reload meanwhile
  }
  State& s = it->second;
  s.running = false;
  if (ok) {
    s.failures = 0;
    ++s.successes;
  } else {
    s.successes = 0;
    ++s.failures;
    if (onFailure_) onFailure_(s.target);
  }
  bool flip = s.up ? s.failures >= s.target.check.fall : s.successes >= s.target.check.rise;
  if (flip) {
    s.up = !s.up;
    s.successes = s.failures = 0;
    onChange_({s.target, s.up, reason, ms});
  }
  schedule(key, s, static_cast<uint64_t>(s.target.check.interval.count()));
  onTimer();  // a slot freed: start what waits, and re-arm
}

}  // namespace molt::master
