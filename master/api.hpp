// The runtime API's commands (docs/api.md): requests arrive from ApiServer, are dispatched to the
// part of the master that answers them.
#pragma once

#include <nlohmann/json.hpp>

#include "master/api_server.hpp"
#include "master/changes.hpp"
#include "master/metrics.hpp"
#include "master/reload.hpp"
#include "master/supervisor.hpp"
#include "master/tls_zones.hpp"

namespace molt::master {

// Master process, master loop.
class ApiCommands {
 public:
  ApiCommands(Supervisor& supervisor, Reloader& reloader, ChangeCoordinator& changes,
              TlsZones& tlsZones, Metrics& metrics)
      : supervisor_(supervisor),
        reloader_(reloader),
        changes_(changes),
        tlsZones_(tlsZones),
        metrics_(metrics) {}

  // The boundary of the API: answers every request exactly once; no exception from a command's
  // handling reaches the loop (a request that slipped past validation is answered, logged, and
  // the master goes on).
  void handle(const nlohmann::json& request, const ApiPeer& peer, ApiReply reply);

 private:
  void dispatch(const nlohmann::json& request, const ApiPeer& peer, ApiReply& reply);
  nlohmann::json procReport() const;
  nlohmann::json cacheReport() const;
  nlohmann::json fleetWorkersReport() const;
  nlohmann::json serversReport(const nlohmann::json& request) const;

  Supervisor& supervisor_;
  Reloader& reloader_;
  ChangeCoordinator& changes_;
  TlsZones& tlsZones_;
  Metrics& metrics_;
};

// Listens on `config`'s global.api_socket (closes the socket when it has none), admitting root,
// the master's uid and the workers' global.user. Errors are logged.
void configureApiSocket(ApiServer& api, const common::Config& config);

}  // namespace molt::master
