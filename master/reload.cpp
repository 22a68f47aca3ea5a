#include "master/reload.hpp"

#include "common/log.hpp"

namespace molt::master {
namespace {

std::string firstLine(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

const char* phaseName(ReloadPhase phase) {
  switch (phase) {
    case ReloadPhase::Idle:
      return "idle";
    case ReloadPhase::Building:
      return "building";
    case ReloadPhase::AwaitingReady:
      return "awaiting ready";
  }
  return "?";
}

Reloader::Reloader(uv_loop_t* loop, ReloadSteps steps, uint64_t timeoutMs)
    : loop_(loop), steps_(std::move(steps)), timeoutMs_(timeoutMs) {
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
}

Reloader::~Reloader() = default;

bool Reloader::start() {
  starting_ = true;
  phase_ = ReloadPhase::Building;
  BuildOutcome built = steps_.build("start", false);
  if (!built.generation) {
    lastErrors_ = std::move(built.errors);
    phase_ = ReloadPhase::Idle;
    starting_ = false;
    return false;
  }
  if (!built.warnings.empty()) lastErrors_ = built.warnings;
  warnings_ = std::move(built.warnings);
  awaiting_ = *built.generation;
  phase_ = ReloadPhase::AwaitingReady;  // no timeout: workers are respawned until they start
  return true;
}

void Reloader::request(const char* why, ApiReply waiter, UpgradeMode mode) {
  if (stopped_) {
    common::log::warn("{}: reload ignored, molt is stopping", why);
    if (waiter) waiter({{"ok", false}, {"error", "molt is stopping"}});
    return;
  }
  if (phase_ != ReloadPhase::Idle) {
    if (!queued_) {
      common::log::info("{}: reload queued until generation {} serves", why, awaiting_);
      queued_.emplace();
    }
    if (waiter) queued_->waiters.push_back(std::move(waiter));
    if (mode == UpgradeMode::Force) queued_->mode = UpgradeMode::Force;
    return;
  }
  if (waiter) waiters_.push_back(std::move(waiter));
  begin(why, mode);
}

void Reloader::begin(const char* why, UpgradeMode mode) {
  phase_ = ReloadPhase::Building;
  if (mode == UpgradeMode::Force || (mode == UpgradeMode::IfChanged && steps_.binaryChanged())) {
    // The exec closes the waiters' connections: they learn now that the new image reloads.
    answerWaiters({{"ok", true},
                   {"status",
                    "binary upgrade: re-executing the master; the new master reloads "
                    "(see proc)"}});
    steps_.upgrade(why);  // returns only if the exec failed: reload with the running binary
  }
  steps_.notifyReloading("reloading: starting generation " +
                         std::to_string(steps_.nextGeneration()));
  if (!buildGeneration(why)) return;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* h) {
        if (auto* self = static_cast<Reloader*>(h->data)) self->onTimeout();
      },
      readyTimeoutMs_, 0);
}

bool Reloader::buildGeneration(const char* why) {
  BuildOutcome built = steps_.build(why, true);
  if (!built.generation) {
    lastErrors_ = std::move(built.errors);
    std::string error = lastErrors_.empty() ? "unknown error" : lastErrors_.front();
    finish(false, "reload failed: " + firstLine(error) + "; " + steps_.summary());
    return false;
  }
  if (!built.warnings.empty()) lastErrors_ = built.warnings;
  warnings_ = std::move(built.warnings);
  awaiting_ = *built.generation;
  readyTimeoutMs_ = built.readyTimeoutMs ? built.readyTimeoutMs : timeoutMs_;
  phase_ = ReloadPhase::AwaitingReady;
  return true;
}

void Reloader::generationServing(unsigned id) {
  if (phase_ != ReloadPhase::AwaitingReady || id != awaiting_) return;
  if (!starting_) return finish(true, steps_.summary());
  starting_ = false;
  phase_ = ReloadPhase::Idle;
  steps_.notifyReady(steps_.summary());
  if (queued_) startQueued();
  if (phase_ == ReloadPhase::Idle) steps_.ended();
}

void Reloader::onTimeout() {
  if (phase_ != ReloadPhase::AwaitingReady || starting_) return;
  std::string error = "generation " + std::to_string(awaiting_) + ": workers not ready within " +
                      std::to_string(readyTimeoutMs_ / 1000) + " s; reload abandoned";
  common::log::error("{}", error);
  lastErrors_ = {error};
  steps_.abandon(awaiting_, "reload abandoned");
  finish(false, "reload failed: " + error + "; " + steps_.summary());
}

void Reloader::finish(bool ok, const std::string& status) {
  uv_timer_stop(timer_.get());
  phase_ = ReloadPhase::Idle;
  if (ok) lastErrors_ = warnings_;
  warnings_.clear();
  common::log::info("{}", ok ? "reload done: " + status : status);  // status says "reload failed"
  steps_.notifyReady(status);
  nlohmann::json response = {{"ok", ok}, {"status", status}};
  if (!ok) {
    response["error"] = lastErrors_.empty() ? status : lastErrors_.front();
    response["errors"] = lastErrors_;
  }
  if (unsigned serving = steps_.servingGeneration()) response["generation"] = serving;
  answerWaiters(response);
  if (queued_) startQueued();
  if (phase_ == ReloadPhase::Idle) steps_.ended();
}

void Reloader::startQueued() {
  Queued next = std::move(*queued_);
  queued_.reset();
  waiters_ = std::move(next.waiters);
  begin("queued reload", next.mode);
}

void Reloader::stop(const std::string& why) {
  stopped_ = true;
  uv_timer_stop(timer_.get());
  phase_ = ReloadPhase::Idle;
  starting_ = false;
  answerWaiters({{"ok", false}, {"error", why + ": molt is stopping"}});
  if (queued_)
    for (auto& waiter : queued_->waiters) waiter({{"ok", false}, {"error", "molt is stopping"}});
  queued_.reset();
}

void Reloader::answerWaiters(const nlohmann::json& response) {
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& waiter : waiters) waiter(response);
}

}  // namespace molt::master
