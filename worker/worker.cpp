#include "worker/worker.hpp"

#include <unistd.h>

#include <csignal>
#include <cstring>

#include "common/log.hpp"
#include "common/process_title.hpp"

namespace molt::worker {

Worker::Worker(uv_loop_t* loop, common::UniqueFd control) : loop_(loop) {
  control_ = std::make_unique<common::ControlChannel>(
      loop_, std::move(control), [this](common::ControlMessage&& m) { onMessage(std::move(m)); },
      [this] { drain("master gone"); });
  uv_check_init(loop_, reaper_.get());
  reaper_->data = this;
  uv_timer_init(loop_, statsTimer_.get());
  statsTimer_->data = this;
  uv_signal_init(loop_, sigterm_.get());
  sigterm_->data = this;
  uv_signal_start(
      sigterm_.get(),
      [](uv_signal_t* h, int) {
        if (auto* self = static_cast<Worker*>(h->data)) self->stop("SIGTERM");
      },
      SIGTERM);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_UNBLOCK, &term, nullptr);
}

Worker::~Worker() = default;

void Worker::onMessage(common::ControlMessage&& message) {
  std::string type = message.type();
  if (type == "hello") return onHello(message);
  if (type == "listener") return onListener(message);
  if (type == "start") return onStart();
  if (type == "drain") {
    if (auto it = message.body.find("hard_stop_in_ms"); it != message.body.end() && it->is_number())
      hardStopAtMs_ = uv_now(loop_) + it->get<uint64_t>();
    return drain("drain order");
  }
  common::log::warn("control: ignoring message of unknown type '{}'", type);
}

void Worker::onHello(common::ControlMessage& message) {
  generation_ = message.body.value("generation", 0u);
  slot_ = message.body.value("slot", 0u);
  common::log::setRole(fmt::format("worker gen {} slot {}", generation_, slot_));
  updateTitle();
  std::string error;
  if (message.fds.size() != 1 || !(bundle_ = common::readBundle(message.fds[0].get(), error))) {
    common::log::error("hello: no usable handover bundle: {}", error);
    return stop("bad hello");
  }
  try {
    config_ = std::make_unique<common::Config>(
        common::parseConfig(bundle_->configText, bundle_->configPath, bundle_->fileSource()));
  } catch (const common::ConfigErrors& e) {
    // The master validated these exact bytes; failing here is a broken invariant.
    common::log::error("handover config does not parse:\n{}", e.what());
    return stop("bad config");
  }
  std::unordered_map<std::string, Backend*> byName;
  for (const auto& b : config_->backends) {
    backends_.push_back(std::make_unique<Backend>(b));
    byName[b.name] = backends_.back().get();
  }
  for (const auto& f : config_->frontends) {
    auto it = byName.find(f.defaultBackend);
    frontends_.push_back(std::make_unique<Frontend>(f, it == byName.end() ? nullptr : it->second));
  }
}

void Worker::onListener(common::ControlMessage& message) {
  std::string name = message.body.value("frontend", "");
  int bind = message.body.value("bind", -1);
  std::string address = message.body.value("address", "");
  for (auto& frontend : frontends_) {
    const auto& binds = frontend->config().binds;
    if (frontend->config().name != name || bind < 0 || bind >= static_cast<int>(binds.size()))
      continue;
    if (message.fds.size() != 1) break;
    int rc = frontend->addListener(loop_, std::move(message.fds[0]), address,
                                   binds[static_cast<size_t>(bind)].backlog);
    if (rc < 0) common::log::error("listener {} {}: {}", name, address, uv_strerror(rc));
    return;
  }
  common::log::error("control: listener message for unknown frontend '{}' bind {}", name, bind);
}

void Worker::onStart() {
  if (phase_ != WorkerPhase::Starting || !config_) return;
  for (auto& frontend : frontends_) {
    int rc = frontend->startAccepting(
        [this](Frontend& f, uv_stream_t* listener) { accept(f, listener); });
    if (rc < 0) return stop("listen failed");
  }
  phase_ = WorkerPhase::Serving;
  control_->send({{"type", "ready"}, {"pid", getpid()}});
}

void Worker::accept(Frontend& frontend, uv_stream_t* listener) {
  Backend* backend = frontend.defaultBackend();
  auto session = std::make_unique<TcpSession>(*this, frontend.config(), *backend);
  if (int rc = uv_accept(listener, reinterpret_cast<uv_stream_t*>(session->client())); rc < 0) {
    // Another worker sharing the socket took it first: not an error.
    if (rc != UV_EAGAIN)
      common::log::warn("uv_accept({}): {}", frontend.config().name, uv_strerror(rc));
    return;
  }
  TcpSession* raw = session.get();
  sessions_.emplace(raw, std::move(session));
  connectionCountChanged();
  raw->start();
}

void Worker::sessionEnded(TcpSession* session) noexcept {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  // Destroyed from the check phase: we are inside one of the session's own callbacks here.
  ended_.push_back(std::move(it->second));
  sessions_.erase(it);
  uv_check_start(reaper_.get(), [](uv_check_t* h) {
    if (auto* self = static_cast<Worker*>(h->data)) self->reapEnded();
  });
  connectionCountChanged();
}

void Worker::reapEnded() {
  ended_.clear();
  uv_check_stop(reaper_.get());
  exitIfIdle();
}

void Worker::connectionCountChanged() {
  statsDirty_ = true;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(statsTimer_.get()))) return;
  uv_timer_start(
      statsTimer_.get(),
      [](uv_timer_t* h) {
        if (auto* self = static_cast<Worker*>(h->data)) self->sendStats();
      },
      100, 0);
}

void Worker::updateTitle() {
  if (phase_ != WorkerPhase::Draining) {
    common::setProcessTitle(fmt::format("worker gen {} slot {}", generation_, slot_));
    return;
  }
  std::string title = fmt::format("worker gen {} draining conns={}", generation_, sessions_.size());
  if (hardStopAtMs_) {
    uint64_t now = uv_now(loop_);
    uint64_t left = hardStopAtMs_ > now ? hardStopAtMs_ - now : 0;
    title += left >= 60'000 ? fmt::format(" stop in {}m", (left + 59'999) / 60'000)
                            : fmt::format(" stop in {}s", (left + 999) / 1000);
  }
  common::setProcessTitle(title);
}

void Worker::sendStats() {
  updateTitle();
  if (!statsDirty_ || !control_ || !control_->open()) return;
  statsDirty_ = false;
  control_->send({{"type", "stats"}, {"connections", sessions_.size()}});
}

void Worker::drain(const char* why) {
  if (phase_ == WorkerPhase::Draining || phase_ == WorkerPhase::Stopped) return;
  common::log::info("draining ({}): {} connections left", why, sessions_.size());
  phase_ = WorkerPhase::Draining;
  for (auto& frontend : frontends_) frontend->closeListeners();
  statsDirty_ = true;
  sendStats();
  // The one timer a draining worker keeps besides its connections': the title's countdown.
  uv_timer_init(loop_, titleTimer_.get());
  titleTimer_->data = this;
  uv_timer_start(
      titleTimer_.get(),
      [](uv_timer_t* h) {
        if (auto* self = static_cast<Worker*>(h->data)) self->updateTitle();
      },
      10'000, 10'000);
  exitIfIdle();
}

void Worker::exitIfIdle() {
  if (phase_ == WorkerPhase::Draining && sessions_.empty()) stop("drained");
}

void Worker::stop(const char* why) {
  if (phase_ == WorkerPhase::Stopped) return;
  common::log::info("stopping ({}), {} connections closed", why, sessions_.size());
  phase_ = WorkerPhase::Stopped;
  for (auto& frontend : frontends_) frontend->closeListeners();
  for (auto& [raw, session] : sessions_) ended_.push_back(std::move(session));
  sessions_.clear();
  ended_.clear();
  control_.reset();
  reaper_.close();
  statsTimer_.close();
  titleTimer_.close();
  sigterm_.close();
  uv_stop(loop_);
}

int runWorker(int controlFd) {
  common::log::setRole("worker");
  // The master decides what a terminal's ^C or a reload means for workers.
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR2, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  // The master execs workers with these blocked so none can kill a worker before this point.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGQUIT, SIGHUP, SIGUSR2}) sigaddset(&set, s);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);  // SIGTERM: once its handler exists (Worker())
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Worker worker(&loop, common::UniqueFd(controlFd));
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  // Let close callbacks of everything the worker owned run, then free the loop.
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) common::log::warn("uv_loop_close: handles still open at exit");
  return 0;
}

}  // namespace molt::worker
