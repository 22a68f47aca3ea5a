// Master: reloads (SIGUSR2/SIGHUP): one at a time, coalesced, never losing the serving generation.
#include <cstring>

#include "common/log.hpp"
#include "master/master.hpp"

namespace molt::master {
namespace {

// A new generation whose workers are not all ready by then is abandoned; the old one serves on.
constexpr uint64_t kReloadTimeoutMs = 60'000;

std::string firstLine(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

void Master::requestReload(const char* why, ApiReply waiter) {
  if (phase_ == MasterPhase::Stopping || phase_ == MasterPhase::Exiting) {
    common::log::warn("{}: reload ignored, molt is stopping", why);
    if (waiter) waiter({{"ok", false}, {"error", "molt is stopping"}});
    return;
  }
  if (phase_ == MasterPhase::Starting || reloading_) {
    if (!reloadPending_)
      common::log::info("{}: reload queued until generation {} serves", why,
                        newest() ? newest()->id() : 0);
    reloadPending_ = true;  // any number of requests meanwhile make one more reload
    if (waiter) pendingReloadWaiters_.push_back(std::move(waiter));
    return;
  }
  if (waiter) reloadWaiters_.push_back(std::move(waiter));
  startReload(why);
}

void Master::answerReloadWaiters(const nlohmann::json& response) {
  auto waiters = std::move(reloadWaiters_);
  reloadWaiters_.clear();
  for (auto& waiter : waiters) waiter(response);
}

void Master::startReload(const char* why) {
  if (!upgraded_ && (forceUpgrade_ || binaryChanged())) upgrade(why);  // returns if exec failed
  upgraded_ = false;
  forceUpgrade_ = false;
  common::log::info("{}: reloading {} as generation {}", why, options_.configPath,
                    nextGenerationId_);
  notifier_.reloading("reloading: starting generation " + std::to_string(nextGenerationId_));
  if (!startGeneration("reload")) {
    std::string error = lastErrors_.empty() ? "unknown error" : lastErrors_.front();
    return finishReload(false, "reload failed: " + firstLine(error) + "; " + summary());
  }
  reloading_ = newest();
  uv_timer_start(
      reloadTimer_.get(),
      [](uv_timer_t* h) {
        if (auto* self = static_cast<Master*>(h->data)) self->onReloadTimeout();
      },
      kReloadTimeoutMs, 0);
  updateTitle();
}

void Master::finishReload(bool ok, const std::string& status) {
  uv_timer_stop(reloadTimer_.get());
  reloading_ = nullptr;
  if (ok) lastErrors_ = journalConflicts_;
  common::log::info("reload {}: {}", ok ? "done" : "failed", status);
  notifier_.ready(status);
  nlohmann::json response = {{"ok", ok}, {"status", status}};
  if (!ok) response["error"] = lastErrors_.empty() ? status : lastErrors_.front();
  if (!ok) response["errors"] = lastErrors_;
  if (Generation* serving = current()) response["generation"] = serving->id();
  answerReloadWaiters(response);
  if (reloadPending_) {
    reloadPending_ = false;
    reloadWaiters_ = std::move(pendingReloadWaiters_);
    pendingReloadWaiters_.clear();
    startReload("queued reload");
  }
  if (!reloading_) applyQueuedChanges();
}

void Master::onReloadTimeout() {
  Generation* abandoned = reloading_;
  if (!abandoned) return;
  std::string error = "generation " + std::to_string(abandoned->id()) +
                      ": workers not ready within " + std::to_string(kReloadTimeoutMs / 1000) +
                      " s; reload abandoned";
  common::log::error("{}", error);
  recordFailure(error);
  abandoned->setPhase(GenerationPhase::Draining);
  abandoned->terminate(&loop_, "reload abandoned");
  finishReload(false, "reload failed: " + error + "; " + summary());
}

void Master::recordFailure(const std::string& errors) {
  lastErrors_.clear();
  size_t start = 0;
  while (start < errors.size()) {
    size_t end = errors.find('\n', start);
    if (end == std::string::npos) end = errors.size();
    if (end > start) lastErrors_.push_back(errors.substr(start, end - start));
    start = end + 1;
  }
}

}  // namespace molt::master
