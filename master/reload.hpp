// Reloads as a state machine: one at a time, coalesced, never losing the serving generation.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/uv_handle.hpp"
#include "master/api_server.hpp"

namespace molt::master {

// Where a reload stands. A request that arrives while one is under way is queued (see
// Reloader::queued_): any number of them make exactly one more reload, started when this one
// ends. Queuing is kept beside the phase rather than as a phase of its own because it can
// accompany any phase but Idle.
enum class ReloadPhase {
  Idle,            // nothing under way: a request starts a reload at once
  CheckingBinary,  // a binary upgrade is due: the new binary checks that it can take over
                   // (`molt --upgrade-check`, asynchronous) before the master re-execs it
  Building,        // reading the config and building the new generation (synchronous)
  AwaitingReady,   // the new generation's workers are starting: the reload ends when they all
                   // report ready, or fails at the timeout (the first start has no timeout)
};

const char* phaseName(ReloadPhase phase);

// Whether a reload re-execs the master first (binary upgrade).
enum class UpgradeMode {
  IfChanged,  // when the binary on disk is not the one running (SIGUSR2, SIGHUP, api reload)
  Force,      // even when unchanged (`molt ctl upgrade`)
  Never,      // the reload that follows an upgrade, in the new image
};

// What building a generation gave: its id, or the errors (one line each). `warnings`: runtime
// changes dropped from the journal, shown by `molt ctl errors` after a reload that succeeded.
struct BuildOutcome {
  std::optional<unsigned> generation;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
  uint64_t readyTimeoutMs = 0;  // the new config's global.reload_timeout (0: the Reloader's own)
};

// Everything a reload does outside its own state: the seam unit tests replace.
struct ReloadSteps {
  std::function<bool()> binaryChanged;
  // Starts checking the binary on disk; `done` gets "" when it can take over, else why not.
  std::function<void(std::function<void(const std::string& error)> done)> checkBinary;
  std::function<void()> cancelCheck;
  // Re-execs the master, handing `waiters` to the new image (which answers them when its
  // reload ends); returns only when it could not, with the reason.
  std::function<std::string(const char* why, const std::vector<ApiReply>& waiters)> upgrade;
  // Builds the next generation and starts its workers; `reload` is false for the first start.
  std::function<BuildOutcome(const char* why, bool reload)> build;
  std::function<unsigned()> nextGeneration;     // the id the next build gets
  std::function<unsigned()> servingGeneration;  // 0 when none serves
  // A generation that did not become ready in time: stop it and free what it holds.
  std::function<void(unsigned generation, const std::string& why)> abandon;
  std::function<std::string()> summary;  // "generation 3 serving, 2 workers; ..."
  std::function<void(const std::string& status)> notifyReloading;
  std::function<void(const std::string& status)> notifyReady;
  // A reload (or the first start) ended, successfully or not: runtime changes that waited for it
  // may go.
  std::function<void()> ended;
  // A reload (not the first start) ended: whether it succeeded and how long it took, for the
  // metrics. Optional.
  std::function<void(bool ok, double seconds)> recorded;
};

// Drives every reload of the master, and its first start, through ReloadPhase. Requests carry an
// optional waiter (the runtime API's `reload` and `upgrade`), answered when the reload they caused
// or joined ends: {"ok", "status", "generation"} or {"ok": false, "error", "errors"}. Master
// loop only.
class Reloader {
 public:
  static constexpr uint64_t kDefaultTimeoutMs = 60'000;

  Reloader(uv_loop_t* loop, ReloadSteps steps, uint64_t timeoutMs = kDefaultTimeoutMs);
  ~Reloader();
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // Builds the first generation. False when it could not be (the master then exits 1); reloads
  // requested before it serves are queued.
  bool start();
  // A reload: started now when Idle, else queued behind the one under way.
  void request(const char* why, ApiReply waiter = {}, UpgradeMode mode = UpgradeMode::IfChanged);
  // The same with several waiters (those a binary upgrade handed over).
  void request(const char* why, std::vector<ApiReply> waiters, UpgradeMode mode);
  // The reload under way (or the next) ends in failure with `error`, whatever it builds: the
  // image that resumed after a failed binary upgrade reports it so.
  void failWith(std::string error) { failure_ = std::move(error); }
  // The supervisor says generation `id` serves; ends the reload that built it.
  void generationServing(unsigned id);
  // The master stops: waiters answered with `why`, the queue dropped, no reload starts again.
  void stop(const std::string& why);
  // Answers every current waiter now (a binary upgrade loses their connections with the exec).
  void answerWaiters(const nlohmann::json& response);

  ReloadPhase phase() const { return phase_; }
  bool queued() const { return queued_.has_value(); }
  // True from start() until the first generation serves.
  bool starting() const { return starting_; }
  // The last failed reload's errors, or the warnings of the last one that succeeded.
  const std::vector<std::string>& lastErrors() const { return lastErrors_; }
  void setLastErrors(std::vector<std::string> errors) { lastErrors_ = std::move(errors); }
  // For the timer and for tests: the new generation is not ready in time.
  void onTimeout();

 private:
  struct Queued {
    std::vector<ApiReply> waiters;
    UpgradeMode mode = UpgradeMode::IfChanged;
  };
  void begin(const char* why, UpgradeMode mode);
  void binaryChecked(const std::string& error);
  void build(const char* why);
  bool buildGeneration(const char* why);
  void finish(bool ok, const std::string& status);
  void startQueued();

  uv_loop_t* loop_;
  ReloadSteps steps_;
  uint64_t timeoutMs_;           // the default
  uint64_t readyTimeoutMs_ = 0;  // of the generation awaited
  ReloadPhase phase_ = ReloadPhase::Idle;
  bool starting_ = false;
  bool stopped_ = false;
  unsigned awaiting_ = 0;  // the generation AwaitingReady waits for
  std::vector<ApiReply> waiters_;
  std::optional<Queued> queued_;
  std::vector<std::string> lastErrors_;
  std::vector<std::string> warnings_;  // of the generation awaited
  std::string why_;                    // of the reload under way
  UpgradeMode mode_ = UpgradeMode::IfChanged;
  std::string upgradeWarning_;  // a binary upgrade refused, the reload going on without it
  std::string failure_;         // see failWith
  uint64_t beganNs_ = 0;        // uv_hrtime() when the reload under way began
  common::UvHandle<uv_timer_t> timer_;
};

}  // namespace molt::master
