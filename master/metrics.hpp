// The master's metrics endpoint (global.metrics): Prometheus text at /metrics, a status page at
// /, /healthz for load balancers, and the same facts as JSON for `molt ctl status`/`top`
// (docs/metrics.md). The master never proxies, so the endpoint answers through reloads, worker
// crashes and binary upgrades (its socket crosses the exec).
//
// Counts come from three places: workers' stats zones, folded by the Supervisor
// (master/counters.hpp); the master's own counters (reloads, runtime changes, failed checks);
// and the zones the master reads anyway (server state and load, session cache, ticket keys).
// A ring of samples (instance memory and connections every kSampleMs, an hour of them) feeds the
// page's chart.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/config.hpp"
#include "common/uv_handle.hpp"
#include "master/counters.hpp"
#include "master/health_check.hpp"
#include "master/http_endpoint.hpp"
#include "master/reload.hpp"
#include "master/supervisor.hpp"
#include "master/tls_zones.hpp"

namespace molt::master {

// Which families a scrape includes (`?scope=` may repeat, or list them comma-separated; an
// empty scope selects none).
enum class Scope : unsigned {
  Global = 1,    // build, reloads, generations, session cache, tickets, runtime changes
  Worker = 2,    // workers: phase, memory, connections
  Frontend = 4,  // connections, requests, responses, bytes, TLS handshakes
  Backend = 8,   // requests, response-time histogram
  Server = 16,   // up, connections, failed checks (one series each per server)
  All = 31
};

class Metrics {
 public:
  static constexpr std::uint64_t kSampleMs = 10'000;
  static constexpr std::size_t kSamples = 360;  // an hour

  Metrics(uv_loop_t* loop, Supervisor& supervisor, Reloader& reloader, const TlsZones& tlsZones,
          HealthChecker& checker);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Listens on the serving config's global.metrics (closes the endpoint when it has none;
  // keeps the socket when the address did not change). Errors are logged.
  void configure(const common::Config& config);
  // Stops serving and sampling (the master exits).
  void close();

  // ---- what the master counts ----
  void reloadEnded(bool ok, double seconds);
  void changeAnswered(const std::string& kind, bool ok);
  void checkFailed(const std::string& backend, const std::string& server);

  // ---- views ----
  // Prometheus text exposition format 0.0.4; `scope` a mask of Scope values.
  std::string prometheus(unsigned scope);
  // Everything the status page and `molt ctl top` show, as JSON.
  nlohmann::json status();
  // The answer to one request on the endpoint.
  HttpResponse serve(const HttpRequest& request);
  // Parses `?scope=` values; false with `error` naming an unknown one.
  static bool parseScope(const std::vector<std::string>& values, unsigned& scope,
                         std::string& error);

  // ---- binary upgrade ----
  // The endpoint's socket (appended to `fds`), the master's counters and the samples.
  nlohmann::json inventory(std::vector<int>& fds) const;
  void restore(const nlohmann::json& entry);

  const HttpEndpoint& endpoint() const { return endpoint_; }

 private:
  struct Sample {
    std::int64_t at = 0;  // unix seconds
    std::uint64_t pss = 0, privateBytes = 0, connections = 0;
  };
  struct Rates {
    std::int64_t at = 0;                                      // unix seconds of `requests`
    std::map<std::string, std::uint64_t> frontends;           // requests by frontend
    std::map<std::string, std::uint64_t> backends;            // requests by backend
    std::map<std::string, double> frontendRate, backendRate;  // per second, last interval
  };
  void takeSample();
  void foldCacheCounters();

  uv_loop_t* loop_;
  Supervisor& supervisor_;
  Reloader& reloader_;
  const TlsZones& tlsZones_;
  HealthChecker& checker_;
  MasterCounters counters_;
  std::deque<Sample> samples_;
  Rates rates_;
  struct LastReload {
    bool known = false, ok = false;
    std::int64_t at = 0;
    double seconds = 0;
  } lastReload_;
  std::int64_t startedAt_;
  HttpEndpoint endpoint_;
  std::string address_;  // as configured, while listening
  common::UvHandle<uv_timer_t> sampler_;
};

}  // namespace molt::master
