#include "worker/tls/fleet_sessions.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>

#include "common/log.hpp"

namespace molt::worker {
FleetSessions::FleetSessions(uv_loop_t* loop, const common::FleetConfig& config,
                             shm::WorkerRow* stats)
    : loop_(loop),
      prefix_(config.prefix + "tls:session:"),
      ttl_(config.sessionTtl),
      timeout_(config.lookupTimeout),
      stats_(stats != nullptr ? stats : &local_),
      link_(loop, common::fleetTarget(config), "fleet sessions") {
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
  link_.onReady = [this] { stats_->fleetUp.store(1, std::memory_order_relaxed); };
  link_.onLost = [this] { stats_->fleetUp.store(0, std::memory_order_relaxed); };
  link_.start();
}

FleetSessions::~FleetSessions() {
  stats_->fleetUp.store(0, std::memory_order_relaxed);
}

std::string FleetSessions::keyOf(std::span<const std::uint8_t> id) const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key = prefix_;
  for (std::uint8_t b : id) {
    key.push_back(kHex[b >> 4]);
    key.push_back(kHex[b & 15]);
  }
  return key;
}

void FleetSessions::store(std::span<const std::uint8_t> id, std::span<const std::uint8_t> value,
                          std::chrono::milliseconds ttl) noexcept {
  if (!link_.ready() || id.empty()) return;
  ttl = std::min(ttl, ttl_);
  if (ttl.count() <= 0) return;
  try {
    std::string key = keyOf(id);
    std::string px = std::to_string(ttl.count());
    std::string_view args[] = {
        "SET", key, {reinterpret_cast<const char*>(value.data()), value.size()}, "PX", px};
    if (link_.command(args, [](const redisReply*) {})) shm::bump(stats_->fleetStores);
  } catch (...) {
  }
}

bool FleetSessions::lookup(std::span<const std::uint8_t> id, Answer answer) noexcept {
  if (!link_.ready() || id.empty()) return false;
  try {
    std::uint64_t seq = next_++;
    std::string key = keyOf(id);
    std::string_view args[] = {"GET", key};
    bool sent = link_.command(args, [this, seq](const redisReply* reply) {
      auto it = waiting_.find(seq);
      if (it == waiting_.end()) return;  // given up already
      Answer answer = std::move(it->second.answer);
      waiting_.erase(it);
      if (reply != nullptr && reply->type == REDIS_REPLY_STRING) {
        answer({reply->str, reply->len});
      } else {
        answer({});
      }
    });
    if (!sent) return false;
    waiting_.emplace(seq, Waiting{uv_now(loop_) + static_cast<std::uint64_t>(timeout_.count()),
                                  std::move(answer)});
    shm::bump(stats_->fleetLookups);
    armTimer();
    return true;
  } catch (...) {
    return false;
  }
}

void FleetSessions::armTimer() noexcept {
  if (waiting_.empty() || uv_is_active(timer_.base())) return;
  std::uint64_t now = uv_now(loop_);
  std::uint64_t first = waiting_.begin()->second.deadline;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<FleetSessions*>(t->data)) self->expire();
      },
      first > now ? first - now : 0, 0);
}

// Handshakes waiting past fleet.lookup_timeout go on as full ones; a late answer is dropped.
void FleetSessions::expire() noexcept {
  std::uint64_t now = uv_now(loop_);
  while (!waiting_.empty() && waiting_.begin()->second.deadline <= now) {
    Answer answer = std::move(waiting_.begin()->second.answer);
    waiting_.erase(waiting_.begin());
    shm::bump(stats_->fleetTimeouts);
    answer({});
  }
  armTimer();
}

void FleetSessions::refused(std::string_view why) noexcept {
  shm::bump(stats_->fleetRefused);
  std::uint64_t now = uv_now(loop_);
  if (now < nextRefusalLog_) return;
  nextRefusalLog_ = now + 60'000;
  common::log::warn("fleet: a session from redis {} refused: {} (logged once a minute)",
                    link_.target().text, why);
}

void FleetSessions::hit() noexcept {
  shm::bump(stats_->fleetHits);
}

}  // namespace molt::worker
