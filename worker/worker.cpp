#include "worker/worker.hpp"

#include <malloc.h>
#include <openssl/crypto.h>
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <random>

#include "common/journal_text.hpp"
#include "common/log.hpp"
#include "common/proc_memory.hpp"
#include "common/process_title.hpp"

namespace molt::worker {

Worker::Worker(uv_loop_t* loop, common::UniqueFd control)
    : loop_(loop),
      parking_(
          loop,
          [](void* self, ParkingLot::Parked parked) {
            static_cast<Worker*>(self)->unpark(std::move(parked));
          },
          [](void* self) { static_cast<Worker*>(self)->connectionCountChanged(); }, this) {
  rlimit limit{};
  descriptorLimit_ = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                         ? static_cast<std::size_t>(limit.rlim_cur)
                         : 1 << 20;
  control_ = std::make_unique<common::ControlChannel>(
      loop_, std::move(control), [this](common::ControlMessage&& m) { onMessage(std::move(m)); },
      [this] {
        refuseOffers("master gone");
        drain("master gone");
      });
  if (const char* path = std::getenv("MOLT_TEST_KILL_ON_ADOPT")) killOnAdopt_ = path;
  // A quarter of the descriptors for idle server connections: the rest for clients and busy ones.
  serverPool_ = std::make_unique<ServerPool>(loop_, buffers_,
                                             std::max<std::size_t>(64, descriptorLimit_ / 4));
  accessLog_ = std::make_unique<AccessLog>(loop_);
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
  if (std::string error = common::unwrapLargeControl(message); !error.empty())
    return common::log::error("control: ignoring a message: {}", error);
  auto decoded = control::decodeFromMaster(message);
  if (!decoded) return common::log::warn("control: ignoring a message: {}", decoded.error);
  std::visit(
      [this](auto& m) {
        using M = std::remove_cvref_t<decltype(m)>;
        if constexpr (std::is_same_v<M, control::Hello>) onHello(m);
        if constexpr (std::is_same_v<M, control::ZoneGrant>) onZone(m);
        if constexpr (std::is_same_v<M, control::ListenerGrant>) onListener(m);
        if constexpr (std::is_same_v<M, control::Start>) onStart();
        if constexpr (std::is_same_v<M, control::Change>) onChange(m);
        if constexpr (std::is_same_v<M, control::Drain>) {
          hardStopAtMs_ = uv_now(loop_) + m.hardStopInMs;
          drain("drain order", m.migrate);
        }
        if constexpr (std::is_same_v<M, control::Adopt>) onAdopt(m);
        if constexpr (std::is_same_v<M, control::Migrated>) onMigrated(m);
      },
      *decoded.value);
}

void Worker::onHello(control::Hello& hello) {
  if (hello.protocol != control::kProtocolVersion) {
    common::log::error("hello: control protocol {}, this binary speaks {}", hello.protocol,
                       control::kProtocolVersion);
    return stop("bad hello");
  }
  generation_ = hello.generation;
  slot_ = hello.slot;
  title_.clear();  // names them
  common::log::setRole(fmt::format("worker gen {} slot {}", generation_, slot_));
  updateTitle();
  // Tests only: workers of this generation and later die before they could be ready, as those of
  // a broken build would (MOLT_TEST_DIE_FROM_GENERATION).
  if (const char* from = std::getenv("MOLT_TEST_DIE_FROM_GENERATION");
      from && generation_ >= static_cast<unsigned>(std::atoi(from)) && std::atoi(from) > 0)
    std::_Exit(3);
  std::string error;
  if (!(bundle_ = common::readBundle(hello.bundle.get(), error))) {
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
  // Runtime-API changes the master journalled, replayed as it did over the same file.
  if (std::string error =
          common::replayJournalText(*config_, bundle_->journal, bundle_->fileSource());
      !error.empty()) {
    common::log::error("handover journal: {}", error);
    return stop("bad journal");
  }
  accessLog_->configure(config_->global.logFormat, generation_);
  closeSpread_ = config_->global.closeSpread;
}

// Builds what the worker serves with, once the zones arrived (the handover sends them before the
// listeners): the parsed backends and frontends move into the objects that serve with them; a
// backend's server list becomes its compact servers, which read their descriptions from the
// server-state zone; a host map becomes its router's hash map.
void Worker::buildServing() {
  if (built_ || !config_) return;
  built_ = true;
  std::size_t index = 0;
  bool zoneMatches = serverState_ != nullptr;
  for (auto& b : config_->backends) {
    // The zone lists the backends in config order.
    const shm::ServerState* state = nullptr;
    std::uint64_t first = 0;
    if (zoneMatches && index < serverState_->backendCount()) {
      auto view = serverState_->backend(static_cast<std::uint32_t>(index));
      zoneMatches = view.name == b.name && view.count == b.servers.size();
      state = zoneMatches ? serverState_.get() : nullptr;
      first = view.first;
    }
    if (serverState_ && !state)
      common::log::error("server-state zone does not match backend {}; health ignored", b.name);
    ++index;
    auto backend = std::make_shared<Backend>(std::move(b), state, first);
    backendsByName_.emplace(backend->name(), backend);
    backends_.push_back(std::move(backend));
  }
  claimStatsRows();
  config_->backends.clear();
  auto lookup = [this](std::string_view name) -> std::shared_ptr<Backend> {
    auto it = backendsByName_.find(std::string(name));
    return it == backendsByName_.end() ? nullptr : it->second;
  };
  for (auto& f : config_->frontends) {
    auto config = std::make_shared<common::FrontendConfig>(std::move(f));
    config->index = static_cast<std::uint32_t>(frontends_.size());
    std::shared_ptr<Router> router;
    // http: routing tables (host maps included) are built once here, never per request.
    if (config->mode == common::Mode::Http) {
      router = std::make_shared<Router>(*config, lookup);
      for (auto& route : config->routes) decltype(route.mapEntries)().swap(route.mapEntries);
    }
    frontends_.push_back(std::make_unique<Frontend>(config, lookup(config->defaultBackend)));
    if (router) routers_.emplace(frontends_.back().get(), std::move(router));
  }
  config_->frontends.clear();
}

void Worker::onListener(control::ListenerGrant& grant) {
  buildServing();
  for (auto& frontend : frontends_) {
    const auto& binds = frontend->config().binds;
    if (frontend->config().name != grant.frontend || grant.bind >= binds.size()) continue;
    int rc = frontend->addListener(loop_, std::move(grant.socket), grant.address, grant.bind);
    if (rc < 0)
      common::log::error("listener {} {}: {}", grant.frontend, grant.address, uv_strerror(rc));
    return;
  }
  common::log::error("control: listener message for unknown frontend '{}' bind {}", grant.frontend,
                     grant.bind);
}

void Worker::onZone(control::ZoneGrant& grant) {
  std::string error;
  // Mapped, the descriptor is of no further use to a worker: each zone drops it.
  switch (grant.kind) {
    case control::ZoneGrantKind::SessionCache:
      sessionCache_ = shm::SessionCache::attach(std::move(grant.zone), grant.size, error);
      if (sessionCache_) sessionCache_->zone().dropDescriptor();
      break;
    case control::ZoneGrantKind::ServerState:
      serverTable_ = std::move(grant.zone);  // attached with the load zone, which follows
      break;
    case control::ZoneGrantKind::ServerLoad:
      serverState_ = shm::ServerState::attach(std::move(serverTable_), std::move(grant.zone),
                                              shm::Access::ReadOnly, error);
      if (serverState_) serverState_->dropDescriptors();
      break;
    case control::ZoneGrantKind::WorkerStats: {
      std::size_t frontends = config_ ? config_->frontends.size() : 0;
      if (built_) frontends = frontends_.size();
      stats_ = shm::WorkerStats::attach(std::move(grant.zone), grant.size,
                                        static_cast<std::uint32_t>(frontends), error);
      if (stats_) stats_->zone().dropDescriptor();
      claimStatsRows();
      break;
    }
    case control::ZoneGrantKind::TicketKeys:
      ticketKeys_ = shm::TicketKeys::attach(std::move(grant.zone), shm::Access::ReadOnly, error);
      if (ticketKeys_) ticketKeys_->zone().dropDescriptor();
      break;
  }
  if (!error.empty()) common::log::error("zone: {}", error);
}

bool Worker::buildTlsContexts() {
  for (auto& frontend : frontends_) {
    if (!frontend->anyTls()) continue;
    TlsOptions options = tlsOptions(config_->tls, frontend->config());
    options.sessionCache = sessionCache_.get();
    options.ticketKeys = ticketKeys_.get();
    if (config_->fleet.enabled && !fleet_)
      fleet_ = std::make_unique<FleetSessions>(loop_, config_->fleet,
                                               stats_ ? &stats_->worker() : nullptr);
    options.fleet = fleet_.get();
    std::string error;
    // The file's certificates, then those set through the runtime API (which win for the names
    // they share).
    tls::TlsCertificateSet set =
        tls::loadCertificates(frontend->config().certificates, bundle_->fileSource());
    set.overridingFrom = set.certificates.size();
    for (const auto& runtime : frontend->config().runtimeCertificates) {
      tls::TlsCertificateSet added = tls::loadRuntimeCertificate(runtime.name, runtime.pem);
      for (auto& p : added.problems) set.problems.push_back(std::move(p));
      for (auto& c : added.certificates) set.certificates.push_back(std::move(c));
    }
    auto context = TlsContext::create(std::move(set), options, error);
    if (!context) {
      // The master loaded these same bytes at its config check: a broken invariant.
      common::log::error("frontend {}: TLS: {}", frontend->config().name, error);
      return false;
    }
    tlsContexts_[frontend.get()] = std::move(context);
    tlsOptions_[frontend.get()] = options;
  }
  return true;
}

void Worker::onStart() {
  if (phase_ != ServingPhase::Starting || !config_) return;
  buildServing();
  if (!buildTlsContexts()) return stop("TLS setup failed");
  dropBuildInputs();
  for (auto& frontend : frontends_) {
    int rc = frontend->startAccepting(
        [this](Frontend& f, uv_stream_t* listener) { accept(f, listener); },
        [this](Frontend& f, int status) { acceptFailed(f, status); });
    if (rc < 0) return stop("listen failed");
  }
  phase_ = ServingPhase::Serving;
  control_->send(control::Ready{getpid()}.encode());
}

void Worker::sessionEnded(Session* session) noexcept {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  if (auto offer = offerOf_.find(session); offer != offerOf_.end()) {
    offers_.erase(offer->second);
    offerOf_.erase(offer);
  }
  // Destroyed from the check phase: we are inside one of the session's own callbacks here.
  ended_.push_back(std::move(it->second));
  sessions_.erase(it);
  uv_check_start(reaper_.get(), [](uv_check_t* h) {
    if (auto* self = static_cast<Worker*>(h->data)) self->reapEnded();
  });
  connectionCountChanged();
}

void Worker::reapEnded() {
  if (refuseSoon_) {
    refuseSoon_ = false;
    refuseOffers("no master to take it");
  }
  ended_.clear();
  if (phase_ == ServingPhase::Draining) {
    releaseOpensslIfUnused();
    trimSoon();
  }
  uv_check_stop(reaper_.get());
  exitIfIdle();
}

void Worker::claimStatsRows() {
  if (!stats_) return;
  for (auto& backend : backends_) {
    if (backend->statsSet()) continue;
    shm::BackendRow* row = stats_->claimBackend(backend->name());
    backend->setStats(row);
    if (!row)
      common::log::warn(
          "backend {}: no row left in the stats zone; its counters start at the "
          "next reload",
          backend->name());
  }
}

void Worker::connectionCountChanged() {
  if (stats_) stats_->worker().connections.store(connections(), std::memory_order_relaxed);
  statsDirty_ = true;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(statsTimer_.get()))) return;
  uv_timer_start(
      statsTimer_.get(),
      [](uv_timer_t* h) {
        if (auto* self = static_cast<Worker*>(h->data)) self->sendStats();
      },
      100, 0);
}

// Set only when it changes: setproctitle rewrites the whole argument area.
void Worker::updateTitle() {
  // Serving, the title never changes once set; the stats timer calls this up to ten times a
  // second.
  if (phase_ != ServingPhase::Draining && !title_.empty() && !titleDraining_) return;
  titleDraining_ = phase_ == ServingPhase::Draining;
  std::string title;
  if (phase_ != ServingPhase::Draining) {
    title = fmt::format("worker gen {} slot {}", generation_, slot_);
  } else {
    title = fmt::format("worker gen {} draining conns={}", generation_, connections());
    if (hardStopAtMs_) {
      uint64_t now = uv_now(loop_);
      uint64_t left = hardStopAtMs_ > now ? hardStopAtMs_ - now : 0;
      title += left >= 60'000 ? fmt::format(" stop in {}m", (left + 59'999) / 60'000)
                              : fmt::format(" stop in {}s", (left + 999) / 1000);
    }
  }
  if (title == title_) return;
  title_ = std::move(title);
  common::setProcessTitle(title_);
}

void Worker::sendStats() {
  updateTitle();
  if (!statsDirty_ || !control_ || !control_->open()) return;
  statsDirty_ = false;
  control::Stats stats;
  stats.connections = static_cast<std::uint32_t>(connections());
  stats.migrated = migrated_;
  stats.adopted = adopted_;
  stats.staying = phase_ == ServingPhase::Draining ? stayingCount() : 0;
  stats.http2Connections = static_cast<std::uint32_t>(http2Connections_);
  stats.http2Streams = static_cast<std::uint32_t>(http2Streams_);
  stats.parked = static_cast<std::uint32_t>(parking_.size());
  control_->sendText(stats.text(), control::Stats::kType);
}

void Worker::stop(const char* why) {
  if (phase_ == ServingPhase::Stopped) return;
  common::log::info("stopping ({}), {} connections closed", why, connections());
  phase_ = ServingPhase::Stopped;
  parking_.closeAll();
  for (auto& frontend : frontends_) frontend->closeListeners();
  serverPool_->closeAll();
  fleet_.reset();
  for (auto& [raw, session] : sessions_) ended_.push_back(std::move(session));
  sessions_.clear();
  ended_.clear();
  accessLog_->flush();
  control_.reset();
  reaper_.close();
  statsTimer_.close();
  titleTimer_.close();
  acceptTimer_.close();
  trimTimer_.close();
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
    // Callbacks of writes cancelled by stop() give their buffers back to the worker's pool:
    // run them while the pool exists.
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  // Let close callbacks of everything the worker owned run, then free the loop.
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) common::log::warn("uv_loop_close: handles still open at exit");
  return 0;
}

}  // namespace molt::worker
