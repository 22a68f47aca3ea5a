#include "master/metrics.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <iterator>

#include <fmt/format.h>

#include "common/log.hpp"
#include "common/proc_memory.hpp"
#include "master/status_page.hpp"
#include "molt_version.h"

namespace molt::master {
namespace {

using Out = std::back_insert_iterator<std::string>;

std::int64_t unixNow() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

// Label values here are names ([A-Za-z0-9_.-]) and numbers, but the version string and anything
// else is escaped as the format requires.
std::string escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void family(Out out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(out, "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Prometheus floats: integers print as integers, the rest with enough digits.
std::string number(double value) {
  return fmt::format("{}", value);
}

void histogram(Out out, std::string_view name, std::string_view labels,
               const std::vector<double>& bounds, const std::uint64_t* counts, double sum,
               std::uint64_t count) {
  std::uint64_t cumulative = 0;
  std::string_view comma = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    fmt::format_to(out, "{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, comma, number(bounds[i]),
                   cumulative);
  }
  fmt::format_to(out, "{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, comma, count);
  std::string set = labels.empty() ? "" : "{" + std::string(labels) + "}";
  fmt::format_to(out, "{}_sum{} {}\n", name, set, number(sum));
  fmt::format_to(out, "{}_count{} {}\n", name, set, count);
}

const std::vector<double>& responseBounds() {
  static const std::vector<double> bounds = [] {
    std::vector<double> b;
    for (std::uint64_t us : shm::kResponseBuckets) b.push_back(static_cast<double>(us) / 1e6);
    return b;
  }();
  return bounds;
}

constexpr const char* kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

}  // namespace

Metrics::Metrics(uv_loop_t* loop, Supervisor& supervisor, Reloader& reloader,
                 const TlsZones& tlsZones, HealthChecker& checker)
    : loop_(loop),
      supervisor_(supervisor),
      reloader_(reloader),
      tlsZones_(tlsZones),
      checker_(checker),
      startedAt_(unixNow()),
      endpoint_(loop, [this](const HttpRequest& r) { return serve(r); }) {
  uv_timer_init(loop_, sampler_.get());
  sampler_->data = this;
  uv_timer_start(
      sampler_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<Metrics*>(t->data)) self->takeSample();
      },
      1'000, kSampleMs);
  // The timer keeps no loop alive: a stopping master exits without waiting for it.
  uv_unref(sampler_.base());
}

Metrics::~Metrics() = default;

void Metrics::configure(const common::Config& config) {
  const auto& global = config.global;
  if (!global.metrics) {
    if (endpoint_.listening()) common::log::info("metrics: endpoint closed");
    endpoint_.close();
    address_.clear();
    return;
  }
  if (endpoint_.listening() && address_ == global.metricsText) return;
  if (std::string error = endpoint_.listen(*global.metrics); !error.empty()) {
    // The endpoint that served keeps serving on its old address when the new one is refused.
    common::log::error("metrics: global.metrics: {}", error);
    return;
  }
  address_ = global.metricsText;
  common::log::info("metrics: listening on {} (/metrics, /, /healthz)", endpoint_.address().text());
}

void Metrics::close() {
  endpoint_.close();
  address_.clear();
  sampler_.close();
}

void Metrics::reloadEnded(bool ok, double seconds) {
  ++(ok ? counters_.reloadsOk : counters_.reloadsFailed);
  counters_.reloadSeconds.observe(seconds);
  lastReload_ = {true, ok, unixNow(), seconds};
}

void Metrics::changeAnswered(const std::string& kind, bool ok) {
  ++counters_.changes[{kind, ok ? "ok" : "failed"}];
}

void Metrics::checkFailed(const std::string& backend, const std::string& server) {
  ++counters_.checkFailures[{backend, server}];
}

// The session cache counts in its zone (workers write it): folded so that the total never goes
// down, even when the zone is replaced (a new size) or a shard wiped.
void Metrics::foldCacheCounters() {
  auto cache = tlsZones_.sessionCache();
  if (!cache) return;
  shm::SessionCacheStats s = cache->stats();
  auto fold = [](std::uint64_t now, std::uint64_t& base, std::uint64_t& last) {
    if (now < last) base += last;
    last = now;
  };
  fold(s.hits, counters_.cacheHitsBase, counters_.cacheHitsLast);
  fold(s.misses, counters_.cacheMissesBase, counters_.cacheMissesLast);
}

bool Metrics::parseScope(const std::vector<std::string>& values, unsigned& scope,
                         std::string& error) {
  if (values.empty()) {
    scope = static_cast<unsigned>(Scope::All);
    return true;
  }
  scope = 0;
  static constexpr std::pair<std::string_view, Scope> kNames[] = {
      {"global", Scope::Global},   {"worker", Scope::Worker}, {"frontend", Scope::Frontend},
      {"backend", Scope::Backend}, {"server", Scope::Server}, {"all", Scope::All}};
  for (const auto& value : values) {
    std::string_view rest = value;
    while (!rest.empty()) {
      std::size_t comma = rest.find(',');
      std::string_view name = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (name.empty()) continue;
      auto it = std::find_if(std::begin(kNames), std::end(kNames),
                             [name](const auto& n) { return n.first == name; });
      if (it == std::end(kNames)) {
        error = "unknown scope '" + std::string(name.substr(0, 40)) +
                "' (known: global, worker, frontend, backend, server, all)";
        return false;
      }
      scope |= static_cast<unsigned>(it->second);
    }
  }
  return true;
}

std::string Metrics::prometheus(unsigned scope) {
  std::string text;
  Out out(text);
  auto wants = [scope](Scope s) { return (scope & static_cast<unsigned>(s)) != 0; };
  Generation* serving = supervisor_.current();

  if (wants(Scope::Global)) {
    family(out, "molt_build_info", "gauge", "molt's version: always 1.");
    fmt::format_to(out, "molt_build_info{{version=\"{}\"}} 1\n", escape(MOLT_VERSION));
    family(out, "molt_serving", "gauge", "1 while a generation serves (what /healthz says).");
    fmt::format_to(out, "molt_serving {}\n", serving ? 1 : 0);
    family(out, "molt_reloads_total", "counter", "Reloads by result (binary upgrades included).");
    fmt::format_to(out, "molt_reloads_total{{result=\"ok\"}} {}\n", counters_.reloadsOk);
    fmt::format_to(out, "molt_reloads_total{{result=\"failed\"}} {}\n", counters_.reloadsFailed);
    family(out, "molt_reload_duration_seconds", "histogram",
           "From a reload's request to its new generation serving (or its failure).");
    const Histogram& h = counters_.reloadSeconds;
    histogram(out, "molt_reload_duration_seconds", "", h.bounds, h.counts.data(), h.sum, h.count);
    family(out, "molt_generations", "gauge", "Generations by phase.");
    std::map<std::string, unsigned> phases = {{"starting", 0}, {"serving", 0}, {"draining", 0}};
    for (const auto& g : supervisor_.generations())
      if (g->phase() != GenerationPhase::Gone) ++phases[phaseName(g->phase())];
    for (const auto& [phase, n] : phases)
      fmt::format_to(out, "molt_generations{{phase=\"{}\"}} {}\n", phase, n);
    foldCacheCounters();
    auto cache = tlsZones_.sessionCache();
    family(out, "molt_session_cache_entries", "gauge", "Sessions in the shared TLS session cache.");
    fmt::format_to(out, "molt_session_cache_entries {}\n", cache ? cache->stats().entries : 0);
    family(out, "molt_session_cache_lookups_total", "counter",
           "Session-id lookups in the shared TLS session cache, by result.");
    fmt::format_to(out, "molt_session_cache_lookups_total{{result=\"hit\"}} {}\n",
                   counters_.cacheHitsBase + counters_.cacheHitsLast);
    fmt::format_to(out, "molt_session_cache_lookups_total{{result=\"miss\"}} {}\n",
                   counters_.cacheMissesBase + counters_.cacheMissesLast);
    family(out, "molt_ticket_key_rotations_total", "counter", "TLS ticket key rotations.");
    auto keys = tlsZones_.ticketKeys();
    fmt::format_to(out, "molt_ticket_key_rotations_total {}\n",
                   keys ? keys->snapshot().rotations : 0);
    family(out, "molt_runtime_changes_total", "counter",
           "Runtime API changes by command and result.");
    for (const auto& [key, n] : counters_.changes)
      fmt::format_to(out, "molt_runtime_changes_total{{kind=\"{}\",result=\"{}\"}} {}\n",
                     escape(key.first), key.second, n);
  }

  if (wants(Scope::Worker)) {
    family(out, "molt_workers", "gauge", "Worker processes by generation and phase.");
    std::vector<std::string> memory, connections;
    for (const auto& g : supervisor_.generations()) {
      std::map<std::string, unsigned> byPhase;
      for (const auto& slot : g->slots()) {
        const WorkerProcess* w = slot.process.get();
        if (!w || w->phase() == WorkerPhase::Exited) continue;
        ++byPhase[phaseName(w->phase())];
        auto m = common::readProcessMemory(w->pid());
        if (m)
          for (auto [kind, bytes] : {std::pair<const char*, std::uint64_t>{"rss", m->rss},
                                     {"pss", m->pss},
                                     {"private", m->privateBytes}})
            memory.push_back(fmt::format(
                "molt_worker_memory_bytes{{generation=\"{}\",slot=\"{}\",kind=\"{}\"}} {}\n",
                g->id(), w->slot(), kind, bytes));
        std::uint64_t open = w->counters() ? w->counters()->connections() : w->connections();
        connections.push_back(
            fmt::format("molt_worker_connections{{generation=\"{}\",slot=\"{}\"}} {}\n", g->id(),
                        w->slot(), open));
      }
      for (const auto& [phase, n] : byPhase)
        fmt::format_to(out, "molt_workers{{generation=\"{}\",phase=\"{}\"}} {}\n", g->id(), phase,
                       n);
    }
    family(out, "molt_worker_memory_bytes", "gauge",
           "Worker memory as the kernel accounts it (/proc/PID/smaps_rollup).");
    for (const auto& line : memory) text += line;
    family(out, "molt_worker_connections", "gauge", "Open client connections per worker.");
    for (const auto& line : connections) text += line;
    family(out, "molt_master_memory_bytes", "gauge", "The master's own memory.");
    if (auto m = common::readProcessMemory(getpid()))
      fmt::format_to(out,
                     "molt_master_memory_bytes{{kind=\"rss\"}} {}\n"
                     "molt_master_memory_bytes{{kind=\"pss\"}} {}\n"
                     "molt_master_memory_bytes{{kind=\"private\"}} {}\n",
                     m->rss, m->pss, m->privateBytes);
  }

  if (wants(Scope::Frontend) || wants(Scope::Backend)) {
    CounterTotals totals = supervisor_.counterTotals();
    if (wants(Scope::Frontend)) {
      auto each = [&](std::string_view name, std::string_view help, auto field) {
        family(out, name, "counter", help);
        for (const auto& [frontend, f] : totals.frontends)
          fmt::format_to(out, "{}{{frontend=\"{}\"}} {}\n", name, escape(frontend), field(f));
      };
      each("molt_frontend_connections_total", "Client connections accepted.",
           [](const FrontendTotals& f) { return f.connections; });
      each("molt_frontend_http_requests_total", "HTTP requests (HTTP/1.1 and HTTP/2 streams).",
           [](const FrontendTotals& f) { return f.requests; });
      family(out, "molt_frontend_http_responses_total", "counter",
             "HTTP responses sent to clients, by status class.");
      for (const auto& [frontend, f] : totals.frontends)
        for (int c = 0; c < 5; ++c)
          fmt::format_to(out,
                         "molt_frontend_http_responses_total{{frontend=\"{}\",code=\"{}\"}} {}\n",
                         escape(frontend), kClasses[c], f.responses[c]);
      each("molt_frontend_bytes_in_total",
           "Bytes received from clients (HTTP: when an exchange ends; tcp: as they arrive).",
           [](const FrontendTotals& f) { return f.bytesIn; });
      each("molt_frontend_bytes_out_total",
           "Bytes sent to clients (HTTP: when an exchange ends; tcp: as they arrive).",
           [](const FrontendTotals& f) { return f.bytesOut; });
      family(out, "molt_tls_handshakes_total", "counter",
             "Completed TLS handshakes, full or resumed.");
      for (const auto& [frontend, f] : totals.frontends) {
        fmt::format_to(out, "molt_tls_handshakes_total{{frontend=\"{}\",resumed=\"false\"}} {}\n",
                       escape(frontend), f.tlsFull);
        fmt::format_to(out, "molt_tls_handshakes_total{{frontend=\"{}\",resumed=\"true\"}} {}\n",
                       escape(frontend), f.tlsResumed);
      }
    }
    if (wants(Scope::Backend)) {
      family(out, "molt_backend_http_requests_total", "counter",
             "HTTP requests routed to the backend.");
      for (const auto& [backend, b] : totals.backends)
        fmt::format_to(out, "molt_backend_http_requests_total{{backend=\"{}\"}} {}\n",
                       escape(backend), b.requests);
      family(out, "molt_backend_response_seconds", "histogram",
             "From a request's first byte to its server's response head.");
      for (const auto& [backend, b] : totals.backends)
        histogram(out, "molt_backend_response_seconds",
                  fmt::format("backend=\"{}\"", escape(backend)), responseBounds(), b.buckets,
                  static_cast<double>(b.micros) / 1e6, b.responses);
    }
  }

  if (wants(Scope::Server) && serving && serving->serverState()) {
    const shm::ServerState& state = *serving->serverState();
    std::string up, open, failures;
    up.reserve(1 << 16);
    for (const auto& backend : serving->config().backends) {
      for (const auto& server : backend.servers) {
        std::uint64_t i = server.stateRow;
        if (i >= state.serverCount()) continue;
        const shm::ServerLive& live = state.live(i);
        bool checked = server.check && !server.disabled;
        std::string labels =
            fmt::format("backend=\"{}\",server=\"{}\"", escape(backend.name), escape(server.name));
        fmt::format_to(std::back_inserter(up), "molt_server_up{{{}}} {}\n", labels,
                       !checked || live.health.load() == 0 ? 1 : 0);
        fmt::format_to(std::back_inserter(open), "molt_server_connections{{{}}} {}\n", labels,
                       state.connections(i).load());
        if (checked) {
          auto it = counters_.checkFailures.find({backend.name, server.name});
          fmt::format_to(std::back_inserter(failures),
                         "molt_server_check_failures_total{{{}}} {}\n", labels,
                         it == counters_.checkFailures.end() ? 0 : it->second);
        }
      }
    }
    family(out, "molt_server_up", "gauge", "1 when the server passes its checks (or has none).");
    text += up;
    family(out, "molt_server_connections", "gauge",
           "Open connections to the server, from every worker.");
    text += open;
    family(out, "molt_server_check_failures_total", "counter", "Failed health checks.");
    text += failures;
  }
  return text;
}

void Metrics::takeSample() {
  Sample s;
  s.at = unixNow();
  auto add = [&s](pid_t pid) {
    if (auto m = common::readProcessMemory(pid)) {
      s.pss += m->pss;
      s.privateBytes += m->privateBytes;
    }
  };
  add(getpid());
  if (supervisor_.zygote().running()) add(supervisor_.zygote().pid());
  for (const auto& g : supervisor_.generations())
    for (const auto& slot : g->slots()) {
      const WorkerProcess* w = slot.process.get();
      if (!w || w->phase() == WorkerPhase::Exited) continue;
      add(w->pid());
      s.connections += w->counters() ? w->counters()->connections() : w->connections();
    }
  samples_.push_back(s);
  while (samples_.size() > kSamples) samples_.pop_front();
  // Request rates over the last interval.
  CounterTotals totals = supervisor_.counterTotals();
  Rates next;
  next.at = s.at;
  for (const auto& [name, f] : totals.frontends) next.frontends[name] = f.requests;
  for (const auto& [name, b] : totals.backends) next.backends[name] = b.requests;
  if (rates_.at > 0 && next.at > rates_.at) {
    double seconds = static_cast<double>(next.at - rates_.at);
    for (const auto& [name, n] : next.frontends) {
      std::uint64_t before = rates_.frontends.count(name) ? rates_.frontends[name] : 0;
      next.frontendRate[name] = n >= before ? static_cast<double>(n - before) / seconds : 0;
    }
    for (const auto& [name, n] : next.backends) {
      std::uint64_t before = rates_.backends.count(name) ? rates_.backends[name] : 0;
      next.backendRate[name] = n >= before ? static_cast<double>(n - before) / seconds : 0;
    }
  }
  rates_ = std::move(next);
}

nlohmann::json Metrics::status() {
  std::uint64_t nowMs = monotonicMs();
  Generation* serving = supervisor_.current();
  nlohmann::json generations = nlohmann::json::array();
  std::uint64_t pss = 0, privateBytes = 0, connections = 0;
  for (const auto& g : supervisor_.generations()) {
    if (g->phase() == GenerationPhase::Gone) continue;
    nlohmann::json workers = nlohmann::json::array();
    for (const auto& slot : g->slots()) {
      const WorkerProcess* w = slot.process.get();
      if (!w || w->phase() == WorkerPhase::Exited) continue;
      std::uint64_t open = w->counters() ? w->counters()->connections() : w->connections();
      connections += open;
      nlohmann::json worker = {{"slot", w->slot()},
                               {"pid", w->pid()},
                               {"phase", phaseName(w->phase())},
                               {"connections", open},
                               {"uptime_s", (nowMs - w->startedMs()) / 1000}};
      if (auto m = common::readProcessMemory(w->pid())) {
        worker["memory"] = {{"rss", m->rss}, {"pss", m->pss}, {"private", m->privateBytes}};
        pss += m->pss;
        privateBytes += m->privateBytes;
      }
      workers.push_back(std::move(worker));
    }
    nlohmann::json entry = {{"id", g->id()},
                            {"phase", phaseName(g->phase())},
                            {"serving", g.get() == serving},
                            {"workers", std::move(workers)}};
    if (g->phase() == GenerationPhase::Draining && g->hardStopAtMs() > 0)
      entry["hard_stop_in_s"] = g->hardStopAtMs() > nowMs ? (g->hardStopAtMs() - nowMs) / 1000 : 0;
    generations.push_back(std::move(entry));
  }
  if (auto m = common::readProcessMemory(getpid())) {
    pss += m->pss;
    privateBytes += m->privateBytes;
  }
  if (supervisor_.zygote().running())
    if (auto m = common::readProcessMemory(supervisor_.zygote().pid())) {
      pss += m->pss;
      privateBytes += m->privateBytes;
    }

  CounterTotals totals = supervisor_.counterTotals();
  nlohmann::json frontends = nlohmann::json::array(), backends = nlohmann::json::array();
  for (const auto& [name, f] : totals.frontends) {
    auto rate = rates_.frontendRate.find(name);
    frontends.push_back(
        {{"name", name},
         {"connections", f.connections},
         {"requests", f.requests},
         {"rate", rate == rates_.frontendRate.end() ? 0.0 : rate->second},
         {"responses", std::vector<std::uint64_t>(std::begin(f.responses), std::end(f.responses))},
         {"bytes_in", f.bytesIn},
         {"bytes_out", f.bytesOut},
         {"tls_full", f.tlsFull},
         {"tls_resumed", f.tlsResumed}});
  }
  // Backends of the serving generation, with server health.
  if (serving) {
    const shm::ServerState* state = serving->serverState();
    for (const auto& backend : serving->config().backends) {
      unsigned up = 0, down = 0, maint = 0;
      for (const auto& server : backend.servers) {
        std::uint64_t i = server.stateRow;
        bool checked = server.check && !server.disabled;
        if (state && i < state->serverCount()) {
          const shm::ServerLive& live = state->live(i);
          if (live.admin.load() != 0)
            ++maint;
          else if (checked && live.health.load() != 0)
            ++down;
          else
            ++up;
        }
      }
      auto t = totals.backends.find(backend.name);
      auto rate = rates_.backendRate.find(backend.name);
      backends.push_back({{"name", backend.name},
                          {"servers", backend.servers.size()},
                          {"up", up},
                          {"down", down},
                          {"maint", maint},
                          {"requests", t == totals.backends.end() ? 0 : t->second.requests},
                          {"rate", rate == rates_.backendRate.end() ? 0.0 : rate->second}});
    }
  }
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& s : samples_) samples.push_back({s.at, s.pss, s.privateBytes, s.connections});
  nlohmann::json reload = {{"ok", counters_.reloadsOk},
                           {"failed", counters_.reloadsFailed},
                           {"errors", reloader_.lastErrors()}};
  if (lastReload_.known)
    reload["last"] = {
        {"ok", lastReload_.ok}, {"at", lastReload_.at}, {"seconds", lastReload_.seconds}};
  return {{"ok", true},
          {"version", MOLT_VERSION},
          {"pid", getpid()},
          {"now", unixNow()},
          {"started", startedAt_},
          {"serving", serving ? nlohmann::json(serving->id()) : nlohmann::json(nullptr)},
          {"instance", {{"pss", pss}, {"private", privateBytes}, {"connections", connections}}},
          {"generations", std::move(generations)},
          {"frontends", std::move(frontends)},
          {"backends", std::move(backends)},
          {"samples", std::move(samples)},
          {"sample_seconds", kSampleMs / 1000},
          {"reload", std::move(reload)}};
}

HttpResponse Metrics::serve(const HttpRequest& request) {
  if (request.path == "/metrics") {
    unsigned scope = 0;
    std::string error;
    if (!parseScope(request.values("scope"), scope, error))
      return {400, "text/plain", error + "\n"};
    return {200, "text/plain; version=0.0.4; charset=utf-8", prometheus(scope)};
  }
  if (request.path == "/healthz") {
    Generation* serving = supervisor_.current();
    if (!serving) return {503, "text/plain; charset=utf-8", "no generation serving\n"};
    return {200, "text/plain; charset=utf-8",
            fmt::format("generation {} serving\n", serving->id())};
  }
  if (request.path == "/status.json") return {200, "application/json", status().dump() + "\n"};
  if (request.path == "/") return {200, "text/html; charset=utf-8", renderStatusPage(status())};
  return {404, "text/plain; charset=utf-8",
          "not found: try /metrics, / (status page), /status.json or /healthz\n"};
}

nlohmann::json Metrics::inventory(std::vector<int>& fds) const {
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& s : samples_) samples.push_back({s.at, s.pss, s.privateBytes, s.connections});
  nlohmann::json doc = {{"counters", counters_.toJson()},
                        {"retired", supervisor_.retiredCounters().toJson()},
                        {"samples", samples},
                        {"started", startedAt_}};
  if (endpoint_.listening()) {
    doc["fd"] = endpoint_.fd();
    doc["address"] = address_;
    fds.push_back(endpoint_.fd());
  }
  return doc;
}

void Metrics::restore(const nlohmann::json& entry) {
  if (!entry.is_object()) return;
  counters_.fromJson(entry.value("counters", nlohmann::json::object()));
  supervisor_.setRetiredCounters(
      CounterTotals::fromJson(entry.value("retired", nlohmann::json::object())));
  if (auto s = entry.find("started"); s != entry.end() && s->is_number_integer())
    startedAt_ = s->get<std::int64_t>();
  if (auto list = entry.find("samples"); list != entry.end() && list->is_array())
    for (const auto& s : *list)
      if (s.is_array() && s.size() == 4 && s[0].is_number_integer() && s[1].is_number_unsigned() &&
          s[2].is_number_unsigned() && s[3].is_number_unsigned())
        samples_.push_back({s[0].get<std::int64_t>(), s[1].get<std::uint64_t>(),
                            s[2].get<std::uint64_t>(), s[3].get<std::uint64_t>()});
  while (samples_.size() > kSamples) samples_.pop_front();
  if (auto fd = entry.find("fd"); fd != entry.end() && fd->is_number_integer()) {
    common::UniqueFd socket(fd->get<int>());
    fcntl(socket.get(), F_SETFD, FD_CLOEXEC);
    if (std::string error = endpoint_.adopt(std::move(socket)); !error.empty())
      common::log::error("upgrade: metrics endpoint: {}", error);
    else
      address_ = entry.value("address", std::string());
  }
}

}  // namespace molt::master
