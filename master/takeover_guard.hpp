// The safety net of a binary upgrade: while a new image takes the master over from the
// inventory, any failure — a refused inventory, an exception, a crash — re-execs the previous
// binary (kept open by the old image) with the same inventory, so the instance goes on.
#pragma once

#include <string>
#include <vector>

namespace molt::master {

// Environment the old image sets for the new one.
inline constexpr const char* kInventoryEnv = "MOLT_INVENTORY_FD";
inline constexpr const char* kFallbackEnv = "MOLT_FALLBACK_FD";  // the previous binary, O_RDONLY
inline constexpr const char* kUpgradeFailedEnv = "MOLT_UPGRADE_FAILED";  // set in the fallback

// Armed by the new image before it adopts anything from the inventory, disarmed once it has.
// Only one at a time, in the master process.
class TakeoverGuard {
 public:
  // `fds`: every descriptor the inventory names (they are made inheritable again before the
  // fallback exec); `argv`: the master's command line. Does nothing without kFallbackEnv (the
  // previous binary had no fallback to offer, or this is the fallback itself).
  TakeoverGuard(std::vector<int> fds, std::vector<std::string> argv);
  ~TakeoverGuard();
  TakeoverGuard(const TakeoverGuard&) = delete;
  TakeoverGuard& operator=(const TakeoverGuard&) = delete;

  bool armed() const { return armed_; }
  // Re-execs the previous binary now, saying `why`; returns only when that is impossible.
  void fallBack(const std::string& why);
  // The takeover succeeded: crash handlers restored, the previous binary's descriptor closed.
  void disarm();

 private:
  bool armed_ = false;
};

}  // namespace molt::master
