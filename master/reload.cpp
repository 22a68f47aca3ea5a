#include "master/reload.hpp"

#include <utility>

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
    case ReloadPhase::CheckingBinary:
      return "checking binary";
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
  std::vector<ApiReply> waiters;
  if (waiter) waiters.push_back(std::move(waiter));
  request(why, std::move(waiters), mode);
}

void Reloader::request(const char* why, std::vector<ApiReply> waiters, UpgradeMode mode) {
  if (stopped_) {
    common::log::warn("{}: reload ignored, molt is stopping", why);
    for (auto& waiter : waiters) waiter({{"ok", false}, {"error", "molt is stopping"}});
    return;
  }
  if (phase_ != ReloadPhase::Idle) {
    if (!queued_) {
      common::log::info("{}: reload queued until generation {} serves", why, awaiting_);
      queued_ = Queued{};
    }
    for (auto& waiter : waiters) queued_->waiters.push_back(std::move(waiter));
    if (mode == UpgradeMode::Force) queued_->mode = UpgradeMode::Force;
    return;
  }
  for (auto& waiter : waiters) waiters_.push_back(std::move(waiter));
  begin(why, mode);
}

void Reloader::begin(const char* why, UpgradeMode mode) {
  beganNs_ = uv_hrtime();
  why_ = why;
  mode_ = mode;
  if (mode == UpgradeMode::Force || (mode == UpgradeMode::IfChanged && steps_.binaryChanged())) {
    phase_ = ReloadPhase::CheckingBinary;
    steps_.checkBinary([this](const std::string& error) { binaryChecked(error); });
    return;
  }
  build(why);
}

// A binary that passed its check is exec'd (and this image is gone); one that did not, or whose
// exec failed, leaves the running binary serving: an asked-for upgrade fails, a reload goes on.
void Reloader::binaryChecked(const std::string& checkError) {
  if (phase_ != ReloadPhase::CheckingBinary) return;
  std::string error = checkError;
  if (error.empty()) error = "re-exec: " + steps_.upgrade(why_.c_str(), waiters_);
  std::string message = "binary upgrade refused: " + error + "; the running binary goes on";
  common::log::error("{}: {}", why_, message);
  if (mode_ == UpgradeMode::Force) {
    lastErrors_ = {message};
    return finish(false, message + "; " + steps_.summary());
  }
  upgradeWarning_ = message;
  build(why_.c_str());
}

void Reloader::build(const char* why) {
  phase_ = ReloadPhase::Building;
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
  if (steps_.recorded)
    steps_.recorded(ok && failure_.empty(), static_cast<double>(uv_hrtime() - beganNs_) / 1e9);
  if (ok) lastErrors_ = warnings_;
  warnings_.clear();
  common::log::info("{}", ok ? "reload done: " + status : status);  // status says "reload failed"
  nlohmann::json response = {{"ok", ok}, {"status", status}};
  if (!ok) {
    response["error"] = lastErrors_.empty() ? status : lastErrors_.front();
    response["errors"] = lastErrors_;
  }
  if (!failure_.empty()) {
    // The binary upgrade this reload followed failed: that is the answer, whatever was built.
    response["ok"] = false;
    response["error"] = failure_;
    lastErrors_ = {failure_};
    steps_.notifyReady(failure_ + "; " + status);
    failure_.clear();
  } else {
    steps_.notifyReady(status);
  }
  if (!upgradeWarning_.empty()) response["warning"] = std::exchange(upgradeWarning_, "");
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
  if (phase_ == ReloadPhase::CheckingBinary) steps_.cancelCheck();
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
