// ParkedTunnel: what an idle tunnel's session leaves in the worker's parking lot with its two
// descriptors (worker/net/parking.hpp), for the session that serves the tunnel when it wakes: the
// tunnel goes on as if it had never stopped — its timeout, its server's connection count, a TLS
// client's OpenSSL state and, for an http frontend, the upgrade's access-log line, written when
// the tunnel really ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "worker/backend.hpp"
#include "worker/net/parking.hpp"

namespace molt::worker {

struct ParkedTunnel final : ParkingLot::Cargo {
  ParkedTunnel(std::shared_ptr<const common::FrontendConfig> f, std::shared_ptr<Backend> b)
      : frontend(std::move(f)), backend(std::move(b)) {}
  // Closed while parked (the worker stops): its server has one connection less.
  ~ParkedTunnel() override {
    if (serverIndex >= 0) backend->connectionClosed(serverIndex);
  }
  ParkedTunnel(const ParkedTunnel&) = delete;
  ParkedTunnel& operator=(const ParkedTunnel&) = delete;
  // From blocks of their own (parked_tunnel.cpp), not from the heap the tunnels' sessions used:
  // thousands of parked tunnels do not keep the pages their sessions freed.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  std::string_view method() const { return std::string_view(request).substr(0, methodLength); }
  std::string_view target() const { return std::string_view(request).substr(methodLength); }

  std::shared_ptr<const common::FrontendConfig> frontend;
  std::shared_ptr<Backend> backend;
  int serverIndex = -1;  // counted as one of that server's connections while parked; -1: none
  // Parked by an HttpSession, whose log line is still owed; else by a TcpSession (a tcp frontend's
  // connection, or an http frontend's websocket that a TcpSession adopted in a migration).
  bool http = false;
  std::uint64_t clientActive = 0, serverActive = 0;  // loop times (ms) of the last byte each way
  // A TLS client's connection state (ParkedTls, worker/tls/stream.hpp): the tunnel goes on over
  // the same TLS session, without a handshake. Null in clear.
  std::unique_ptr<ParkingLot::Cargo> clientTls;
  // An http frontend's upgrade, for its log line.
  std::string request;  // the method, then the target
  std::uint32_t methodLength = 0;
  unsigned versionMinor = 1;
  int lastServer = -1;
  bool reused = false;
  std::uint64_t bytesIn = 0, bytesOut = 0;
  std::uint64_t tStart = 0, tHead = 0, tConnect = 0, tResponse = 0;  // uv_hrtime()
};

}  // namespace molt::worker
