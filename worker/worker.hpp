// A worker process: one libuv loop serving one generation's frontends.
#pragma once

#include <uv.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/bundle.hpp"
#include "common/config.hpp"
#include "common/control.hpp"
#include "common/uv_handle.hpp"
#include "worker/backend.hpp"
#include "worker/buffer_pool.hpp"
#include "worker/frontend.hpp"
#include "worker/tcp_session.hpp"

namespace molt::worker {

// The control socket's descriptor number in a worker process (set up by the master before exec).
inline constexpr int kControlFd = 3;

// Entry point of `molt --worker`: runs until drained or stopped. Returns the exit status.
int runWorker(int controlFd);

enum class WorkerPhase {
  Starting,  // waiting for hello, listeners and start from the master
  Serving,   // accepting on its listeners
  Draining,  // listeners closed; finishing live connections, exits at zero
  Stopped    // everything closed; the loop is ending
};

class Worker final : public SessionHost {
 public:
  Worker(uv_loop_t* loop, common::UniqueFd control);
  ~Worker() override;

  uv_loop_t* loop() override { return loop_; }
  BufferPool& buffers() override { return buffers_; }
  void sessionEnded(TcpSession* session) noexcept override;

 private:
  void onMessage(common::ControlMessage&& message);
  void onHello(common::ControlMessage& message);
  void onListener(common::ControlMessage& message);
  void onStart();
  void drain(const char* why);
  void stop(const char* why);
  void accept(Frontend& frontend, uv_stream_t* listener);
  void connectionCountChanged();
  void sendStats();
  void updateTitle();
  void reapEnded();
  void exitIfIdle();

  uv_loop_t* loop_;
  WorkerPhase phase_ = WorkerPhase::Starting;
  std::unique_ptr<common::ControlChannel> control_;
  unsigned generation_ = 0, slot_ = 0;
  std::optional<common::Bundle> bundle_;
  std::unique_ptr<common::Config> config_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<std::unique_ptr<Frontend>> frontends_;
  BufferPool buffers_;
  std::unordered_map<TcpSession*, std::unique_ptr<TcpSession>> sessions_;
  std::vector<std::unique_ptr<TcpSession>> ended_;
  common::UvHandle<uv_check_t> reaper_;
  common::UvHandle<uv_timer_t> statsTimer_;
  common::UvHandle<uv_timer_t> titleTimer_;
  common::UvHandle<uv_signal_t> sigterm_;
  uint64_t hardStopAtMs_ = 0;  // loop time of the master's hard stop; 0: unknown
  bool statsDirty_ = false;
};

}  // namespace molt::worker
