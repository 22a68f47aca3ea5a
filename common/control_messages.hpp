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
//     "drain"    {hard_stop_in_ms, migrate}  stop accepting, finish live connections, exit at
//                                       zero; with migrate, first offer every connection at a clean
//                                       boundary to the master ("migrate"). Sent again to a
//                                       draining worker when a newer generation serves: connections
//                                       that did not move are offered again
//     "change"   {seq, op, ...}         a runtime-API change the master validated and resolved
//                                       (see ChangeOp below); sent to serving workers only, and
//                                       after "start" to a worker respawned later into the
//                                       generation; answered with "changed"
//     "adopt"    {ticket, kind, frontend, backend, server, input}  fds: [client] or [client,
//                                       server]  a connection another generation's worker let go
//                                       (see "migrate"): serve it as if accepted; answered with
//                                       "adopted" before the first byte is read or written
//     "migrated" {id, error}            the answer to this worker's "migrate" `id`: "" when the
//                                       receiver took the connection (close it without a FIN),
//                                       else why not (serve it on)
//   worker -> master:
//     "ready"    {pid, protocol}        accepting on every listener
//     "stats"    {connections, migrated, adopted, staying, http2_connections, http2_streams}
//                                       live connection count; connections moved out and in so
//                                       far; connections of a draining worker that cannot move
//                                       (TLS, HTTP/2); HTTP/2 connections and their open streams.
//                                       Sent when they change, at most every 100 ms; all but the
//                                       first may be absent (an older worker)
//     "changed"  {seq, error}           a "change" applied ("" error), or refused with the reason
//     "migrate"  {id, kind, frontend, backend, server, input}  fds: [client] or [client, server]
//                                       a draining worker lets a connection go: it stopped reading
//                                       both sockets and nothing it read is still unwritten, but
//                                       `input` (http: bytes of the next request(s)). Until the
//                                       "migrated" answer the connection is still the sender's.
//                                       Only a draining worker sends it
//     "adopted"  {ticket, error}        the answer to "adopt": "" taken, else why not (the
//                                       receiver closed its copies without touching the sockets)
//
//   A migration: worker A "migrate" id -> master picks a serving worker B of the newest generation
//   (least connections) -> B "adopt" ticket -> B "adopted" -> A "migrated" id. If B refuses, exits
//   or does not answer within kAdoptTimeoutMs (it is then replaced), A is told "migrated" with the
//   reason and keeps the connection: a connection is never served by both, nor by neither.
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
inline constexpr unsigned kProtocolVersion = 3;

// Most bytes a migrated http connection carries along (one worker input buffer).
inline constexpr std::size_t kMaxMigratedInput = 16 * 1024;
// How long the master waits for a receiver's "adopted".
inline constexpr std::uint64_t kAdoptTimeoutMs = 10'000;

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

// WorkerStats: the worker's own counters (shm/worker_stats.hpp), one zone per worker process.
enum class ZoneGrantKind { SessionCache, ServerState, ServerLoad, TicketKeys, WorkerStats };

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
  bool migrate = false;  // offer connections to the newest generation (global.migrate)
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

// ---- connection migration (both directions) ----------------------------------------------

enum class MigrateKind {
  Http,    // an http client connection between requests: fds [client]
  Tunnel,  // an http connection upgraded (websocket): fds [client, server]
  Tcp      // a tcp-mode connection: fds [client, server]
};
std::string_view kindName(MigrateKind kind);

// A connection on its way between workers, as "migrate" and "adopt" carry it.
struct MovingConnection {
  MigrateKind kind = MigrateKind::Http;
  std::string frontend;       // its frontend's name
  std::string backend;        // tunnel, tcp: the backend and server its server socket goes to
  std::string server;         //   (the receiver counts it there when it has them)
  std::string input;          // http: bytes already read, at most kMaxMigratedInput
  UniqueFd client, upstream;  // upstream: tunnel, tcp
};

struct Adopt {
  static constexpr std::string_view kType = "adopt";
  std::uint64_t ticket = 0;
  MovingConnection connection;
  ControlMessage encode() &&;
  static Decoded<Adopt> decode(ControlMessage& message);
};

struct Migrated {
  static constexpr std::string_view kType = "migrated";
  std::uint64_t id = 0;
  std::string error;  // "" when the receiver took it
  ControlMessage encode() const;
  static Decoded<Migrated> decode(ControlMessage& message);
};

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
using FromMaster =
    std::variant<Hello, ZoneGrant, ListenerGrant, Start, Drain, Change, Adopt, Migrated>;
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
  std::uint64_t migrated = 0, adopted = 0;  // connections moved out, and in, so far
  std::uint32_t staying = 0;                // draining: connections that cannot move (TLS)
  std::uint32_t http2Connections = 0, http2Streams = 0;  // of `connections`: HTTP/2 ones
  std::uint32_t parked = 0;  // of `connections`: idle keep-alive ones kept as a descriptor
  ControlMessage encode() const;
  // The same message as encode()'s body would serialize to, written directly: a worker sends
  // one up to ten times a second, and building it through nlohmann costs more than the rest of
  // the report. The receiver decodes it like any other message.
  std::string text() const;
  static Decoded<Stats> decode(ControlMessage& message);
};

struct Changed {
  static constexpr std::string_view kType = "changed";
  std::uint64_t seq = 0;
  std::string error;  // "" when applied
  ControlMessage encode() const;
  static Decoded<Changed> decode(ControlMessage& message);
};

struct Migrate {
  static constexpr std::string_view kType = "migrate";
  std::uint64_t id = 0;  // the sender's, echoed in "migrated"
  MovingConnection connection;
  ControlMessage encode() &&;
  static Decoded<Migrate> decode(ControlMessage& message);
};

struct Adopted {
  static constexpr std::string_view kType = "adopted";
  std::uint64_t ticket = 0;
  std::string error;  // "" when taken
  ControlMessage encode() const;
  static Decoded<Adopted> decode(ControlMessage& message);
};

// What the master accepts from a worker; anything else (another type, a missing or mistyped
// field, a descriptor it should not carry) is an error naming what was wrong.
using FromWorker = std::variant<Ready, Stats, Changed, Migrate, Adopted>;
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
