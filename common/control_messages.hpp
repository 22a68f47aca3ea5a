// The control protocol's messages: one struct per message, each with one encode and one decode.
//
// Protocol description (the only one; common/control.hpp describes the transport):
//
//   Transport: one AF_UNIX SOCK_SEQPACKET socketpair per worker (common/control.hpp). Every
//   message is one datagram: a JSON object {"type": T, ...} with 0..kMaxControlFds descriptors
//   attached as SCM_RIGHTS. The names below are the wire names; nothing outside this file and
//   its .cpp names a message's fields.
//
//   master -> worker, in this order at a worker's start (the handover):
//     "hello"    {protocol, generation, slot, workers}  fds: [bundle]  protocol: kProtocolVersion;
//                                       the bundle is a sealed memfd (common/bundle.hpp): config
//                                       text and side files, parsed by the worker
//     "zone"     {kind, size}           fds: [memfd]  a shared-memory zone (shm/zone.hpp): kind
//                                       "session-cache", "server-state" (read-only descriptor,
//                                       then "server-load"), or "ticket-keys" (read-only); size:
//                                       the zone's bytes (0: whatever the zone's header says)
//     "listener" {frontend, bind, address}  fds: [socket]  listening socket for bind number
//                                       `bind` of frontend `frontend`
//     "start"    {}                     every listener sent: build, start accepting, say "ready"
//   master -> worker, later:
//     "drain"    {hard_stop_in_ms}      stop accepting, finish live connections, exit at zero
//     "change"   {seq, op, ...}         a runtime-API change the master validated and resolved
//                                       (see ChangeOp below); sent to serving workers only, and
//                                       after "start" to a worker respawned later into the
//                                       generation; answered with "changed"
//   worker -> master:
//     "ready"    {pid, protocol}        accepting on every listener
//     "stats"    {connections}          live connection count; sent when it changes, at most
//                                       every 100 ms
//     "changed"  {seq, error}           a "change" applied ("" error), or refused with the reason
//   reserved: "migrate" (connection hand-over between generations).
//
//   master -> zygote (master/zygote.hpp, app/zygote.hpp):
//     "spawn"    {drop, uid, gid}       fds: [worker's end of its control socket]
//   zygote -> master:
//     "spawned"  {pid} or {error}
//
//   A worker ignores (and logs) a message type it does not know, so that a newer master can talk
//   to an older worker across a binary upgrade. The master accepts from a worker only the
//   messages above, each decoded and validated here; anything else is a broken or hostile
//   worker.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/control.hpp"
#include "common/unique_fd.hpp"

namespace molt::common::control {

// Bumped on any incompatible change to the messages above. Exchanged at hello (master -> worker)
// and ready (worker -> master).
inline constexpr unsigned kProtocolVersion = 2;

// A decoded message, or why the bytes were not one ("stats: connections: expected an unsigned
// integer").
template <class T>
struct Decoded {
  std::optional<T> value;
  std::string error;
  explicit operator bool() const { return value.has_value(); }
  T& operator*() { return *value; }
  T* operator->() { return &*value; }
};

// ---- master -> worker --------------------------------------------------------------------

struct Hello {
  static constexpr std::string_view kType = "hello";
  unsigned protocol = kProtocolVersion;
  unsigned generation = 0, slot = 0, workers = 0;
  UniqueFd bundle;
  ControlMessage encode() &&;
  static Decoded<Hello> decode(ControlMessage& message);
};

enum class ZoneGrantKind { SessionCache, ServerState, ServerLoad, TicketKeys };

struct ZoneGrant {
  static constexpr std::string_view kType = "zone";
  ZoneGrantKind kind = ZoneGrantKind::SessionCache;
  std::uint64_t size = 0;
  UniqueFd zone;
  ControlMessage encode() &&;
  static Decoded<ZoneGrant> decode(ControlMessage& message);
};

struct ListenerGrant {
  static constexpr std::string_view kType = "listener";
  std::string frontend;
  unsigned bind = 0;
  std::string address;  // as bound, for logs
  UniqueFd socket;
  ControlMessage encode() &&;
  static Decoded<ListenerGrant> decode(ControlMessage& message);
};

struct Start {
  static constexpr std::string_view kType = "start";
  ControlMessage encode() &&;
  static Decoded<Start> decode(ControlMessage& message);
};

struct Drain {
  static constexpr std::string_view kType = "drain";
  std::uint64_t hardStopInMs = 0;
  ControlMessage encode() &&;
  static Decoded<Drain> decode(ControlMessage& message);
};

// The operations a "change" carries, as a worker applies them (worker/changes.cpp). The runtime
// API's nine commands resolve to these in the master (master/change_kinds.cpp).
struct ServerPut {  // add a server, or update its address and weight
  static constexpr std::string_view kOp = "server.put";
  std::string backend, server, address;
  unsigned weight = 1;
  std::uint64_t index = 0;  // its row in the generation's server-state zone
};
struct ServerRemove {  // no new traffic to it
  static constexpr std::string_view kOp = "server.remove";
  std::string backend, server;
};
struct BackendAdd {  // the backend object as the API took it, parsed by the config's parser
  static constexpr std::string_view kOp = "backend.add";
  nlohmann::json backend;
  std::uint64_t first = 0;  // its servers' zone rows start here
};
struct BackendDel {
  static constexpr std::string_view kOp = "backend.del";
  std::string backend;
};
struct MapSet {
  static constexpr std::string_view kOp = "map.set";
  std::string frontend;
  std::uint64_t route = 0;  // index into the frontend's routes
  std::string host, backend;
};
struct MapDel {
  static constexpr std::string_view kOp = "map.del";
  std::string frontend;
  std::uint64_t route = 0;
  std::string host;
};
struct CertSet {
  static constexpr std::string_view kOp = "cert.set";
  std::string frontend, name, pem;
};
struct CertDel {
  static constexpr std::string_view kOp = "cert.del";
  std::string frontend, name;
};
using ChangeOp =
    std::variant<ServerPut, ServerRemove, BackendAdd, BackendDel, MapSet, MapDel, CertSet, CertDel>;

// The wire name of `op` ("server.put").
std::string_view opName(const ChangeOp& op);

struct Change {
  static constexpr std::string_view kType = "change";
  std::uint64_t seq = 0;
  ChangeOp op;
  ControlMessage encode() const;
  static Decoded<Change> decode(ControlMessage& message);
};

// What a worker may receive from the master. A message of a type not listed decodes to the error
// "unknown message type 'x'" (a worker logs and ignores it).
using FromMaster = std::variant<Hello, ZoneGrant, ListenerGrant, Start, Drain, Change>;
Decoded<FromMaster> decodeFromMaster(ControlMessage& message);

// ---- worker -> master --------------------------------------------------------------------

struct Ready {
  static constexpr std::string_view kType = "ready";
  pid_t pid = 0;
  unsigned protocol = kProtocolVersion;
  ControlMessage encode() const;
  static Decoded<Ready> decode(ControlMessage& message);
};

struct Stats {
  static constexpr std::string_view kType = "stats";
  std::uint32_t connections = 0;
  ControlMessage encode() const;
  static Decoded<Stats> decode(ControlMessage& message);
};

struct Changed {
  static constexpr std::string_view kType = "changed";
  std::uint64_t seq = 0;
  std::string error;  // "" when applied
  ControlMessage encode() const;
  static Decoded<Changed> decode(ControlMessage& message);
};

// What the master accepts from a worker; anything else (another type, a missing or mistyped
// field, a descriptor attached) is an error naming what was wrong.
using FromWorker = std::variant<Ready, Stats, Changed>;
Decoded<FromWorker> decodeFromWorker(ControlMessage& message);

// ---- master <-> zygote -------------------------------------------------------------------

struct Spawn {
  static constexpr std::string_view kType = "spawn";
  bool drop = false;  // setgroups/setgid/setuid to uid/gid before the worker runs
  uid_t uid = 0;
  gid_t gid = 0;
  UniqueFd control;  // the worker's end of its control socket
  ControlMessage encode() &&;
  static Decoded<Spawn> decode(ControlMessage& message);
};

struct Spawned {
  static constexpr std::string_view kType = "spawned";
  pid_t pid = 0;      // > 0 when a worker was forked
  std::string error;  // else why not
  ControlMessage encode() const;
  static Decoded<Spawned> decode(ControlMessage& message);
};

}  // namespace molt::common::control
