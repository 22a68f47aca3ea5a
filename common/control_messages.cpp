#include "common/control_messages.hpp"

#include "common/control_fields.hpp"

#include <charconv>
#include <cstring>
#include <limits>
#include <utility>

namespace molt::common::control {
namespace {

using detail::Fields;
using detail::make;
using detail::withFd;

constexpr std::pair<ZoneGrantKind, std::string_view> kZoneKinds[] = {
    {ZoneGrantKind::SessionCache, "session-cache"}, {ZoneGrantKind::ServerState, "server-state"},
    {ZoneGrantKind::ServerLoad, "server-load"},     {ZoneGrantKind::TicketKeys, "ticket-keys"},
    {ZoneGrantKind::WorkerStats, "worker-stats"},
};

// ---- change operations: each lists its fields once, for the writer and the reader ----

template <class Visit>
void fields(Visit& v, ServerPut& o) {
  v("backend", o.backend);
  v("server", o.server);
  v("address", o.address);
  v("weight", o.weight, 65535u);
  v("index", o.index);
}
template <class Visit>
void fields(Visit& v, ServerRemove& o) {
  v("backend", o.backend);
  v("server", o.server);
}
template <class Visit>
void fields(Visit& v, BackendAdd& o) {
  v("backend", o.backend);
  v("first", o.first);
}
template <class Visit>
void fields(Visit& v, BackendDel& o) {
  v("backend", o.backend);
}
template <class Visit>
void fields(Visit& v, MapSet& o) {
  v("frontend", o.frontend);
  v("route", o.route);
  v("host", o.host);
  v("backend", o.backend);
}
template <class Visit>
void fields(Visit& v, MapDel& o) {
  v("frontend", o.frontend);
  v("route", o.route);
  v("host", o.host);
}
template <class Visit>
void fields(Visit& v, CertSet& o) {
  v("frontend", o.frontend);
  v("name", o.name);
  v("pem", o.pem);
}
template <class Visit>
void fields(Visit& v, CertDel& o) {
  v("frontend", o.frontend);
  v("name", o.name);
}

struct Writer {
  nlohmann::json& body;
  template <class T, class Max = T>
  void operator()(const char* key, const T& value, Max = {}) {
    body[key] = value;
  }
};

struct Reader {
  Fields& f;
  void operator()(const char* key, std::string& value) { value = f.string(key); }
  void operator()(const char* key, nlohmann::json& value) { value = f.object(key); }
  template <class T>
  void operator()(const char* key, T& value, T max = std::numeric_limits<T>::max()) {
    value = f.integer<T>(key, 0, max);
  }
};

// The alternative of ChangeOp named `name`, read from `f`; false when no alternative has it.
template <std::size_t I = 0>
bool readOp(std::string_view name, Fields& f, ChangeOp& out) {
  if constexpr (I == std::variant_size_v<ChangeOp>) {
    return false;
  } else {
    using Op = std::variant_alternative_t<I, ChangeOp>;
    if (name != Op::kOp) return readOp<I + 1>(name, f, out);
    Op op;
    Reader reader{f};
    fields(reader, op);
    out = std::move(op);
    return true;
  }
}

// The alternative of `Variant` whose kType is the message's type, decoded.
template <class Variant, std::size_t I = 0>
Decoded<Variant> decodeOneOf(ControlMessage& message, const std::string& type) {
  if constexpr (I == std::variant_size_v<Variant>) {
    Decoded<Variant> out;
    out.error = type.empty() ? std::string("a message without a type")
                             : "unknown message type '" + type.substr(0, 64) + "'";
    return out;
  } else {
    using Message = std::variant_alternative_t<I, Variant>;
    if (type != Message::kType) return decodeOneOf<Variant, I + 1>(message, type);
    Decoded<Message> decoded = Message::decode(message);
    Decoded<Variant> out;
    if (decoded)
      out.value.emplace(std::move(*decoded.value));
    else
      out.error = std::move(decoded.error);
    return out;
  }
}

}  // namespace

ControlMessage Hello::encode() && {
  return withFd(make(kType, {{"protocol", protocol},
                             {"generation", generation},
                             {"slot", slot},
                             {"workers", workers}}),
                std::move(bundle));
}

Decoded<Hello> Hello::decode(ControlMessage& message) {
  Fields f(message, kType, 1);
  Hello h;
  h.protocol = f.integer<unsigned>("protocol");
  h.generation = f.integer<unsigned>("generation");
  h.slot = f.integer<unsigned>("slot");
  h.workers = f.integer<unsigned>("workers");
  h.bundle = f.fd(0);
  return f.finish(std::move(h));
}

ControlMessage ZoneGrant::encode() && {
  std::string_view name;
  for (const auto& [k, n] : kZoneKinds)
    if (k == kind) name = n;
  return withFd(make(kType, {{"kind", name}, {"size", size}}), std::move(zone));
}

Decoded<ZoneGrant> ZoneGrant::decode(ControlMessage& message) {
  Fields f(message, kType, 1);
  ZoneGrant z;
  std::string name = f.string("kind");
  bool known = false;
  for (const auto& [k, n] : kZoneKinds)
    if (n == name) z.kind = k, known = true;
  if (!known) f.fail("kind", "unknown zone kind '" + name.substr(0, 64) + "'");
  z.size = f.integer<std::uint64_t>("size");
  z.zone = f.fd(0);
  return f.finish(std::move(z));
}

ControlMessage ListenerGrant::encode() && {
  return withFd(make(kType, {{"frontend", frontend}, {"bind", bind}, {"address", address}}),
                std::move(socket));
}

Decoded<ListenerGrant> ListenerGrant::decode(ControlMessage& message) {
  Fields f(message, kType, 1);
  ListenerGrant l;
  l.frontend = f.string("frontend");
  l.bind = f.integer<unsigned>("bind");
  l.address = f.string("address");
  l.socket = f.fd(0);
  return f.finish(std::move(l));
}

ControlMessage Start::encode() && {
  return make(kType);
}

Decoded<Start> Start::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  return f.finish(Start{});
}

ControlMessage Drain::encode() && {
  return make(kType, {{"hard_stop_in_ms", hardStopInMs}, {"migrate", migrate}});
}

Decoded<Drain> Drain::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  Drain d;
  d.hardStopInMs = f.integer<std::uint64_t>("hard_stop_in_ms");
  d.migrate = f.has("migrate") && f.boolean("migrate");
  return f.finish(std::move(d));
}

std::string_view opName(const ChangeOp& op) {
  return std::visit([](const auto& o) { return std::remove_cvref_t<decltype(o)>::kOp; }, op);
}

ControlMessage Change::encode() const {
  nlohmann::json body = {{"seq", seq}, {"op", opName(op)}};
  Writer writer{body};
  ChangeOp copy = op;  // the field lists take a mutable operation, to serve the reader too
  std::visit([&](auto& o) { fields(writer, o); }, copy);
  return make(kType, std::move(body));
}

Decoded<Change> Change::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  Change c;
  c.seq = f.integer<std::uint64_t>("seq");
  std::string name = f.string("op");
  if (!name.empty() && !readOp(name, f, c.op))
    f.fail("op", "unknown change '" + name.substr(0, 64) + "'");
  return f.finish(std::move(c));
}

Decoded<FromMaster> decodeFromMaster(ControlMessage& message) {
  return decodeOneOf<FromMaster>(message, message.type());
}

ControlMessage Ready::encode() const {
  return make(kType, {{"pid", pid}, {"protocol", protocol}});
}

Decoded<Ready> Ready::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  Ready r;
  r.pid = f.integer<pid_t>("pid", 1);
  r.protocol = f.integer<unsigned>("protocol");
  return f.finish(std::move(r));
}

// Sent up to ten times a second by a busy worker: fields set one by one, as a braced list would
// build every pair as an array first (twice the allocations, measured with callgrind).
ControlMessage Stats::encode() const {
  nlohmann::json body = nlohmann::json::object();
  body["connections"] = connections;
  body["migrated"] = migrated;
  body["adopted"] = adopted;
  body["staying"] = staying;
  body["http2_connections"] = http2Connections;
  body["http2_streams"] = http2Streams;
  body["parked"] = parked;
  return make(kType, std::move(body));
}

std::string Stats::text() const {
  char out[256];
  char* at = out;
  auto put = [&at](std::string_view key, std::uint64_t value) {
    std::memcpy(at, key.data(), key.size());
    at += key.size();
    at = std::to_chars(at, at + 20, value).ptr;
  };
  put(R"({"adopted":)", adopted);
  put(R"(,"connections":)", connections);
  put(R"(,"http2_connections":)", http2Connections);
  put(R"(,"http2_streams":)", http2Streams);
  put(R"(,"migrated":)", migrated);
  put(R"(,"parked":)", parked);
  put(R"(,"staying":)", staying);
  constexpr std::string_view kEnd = R"(,"type":"stats"})";
  std::memcpy(at, kEnd.data(), kEnd.size());
  at += kEnd.size();
  return std::string(out, static_cast<std::size_t>(at - out));
}

Decoded<Stats> Stats::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  Stats s;
  s.connections = f.integer<std::uint32_t>("connections");
  if (f.has("migrated")) s.migrated = f.integer<std::uint64_t>("migrated");
  if (f.has("adopted")) s.adopted = f.integer<std::uint64_t>("adopted");
  if (f.has("staying")) s.staying = f.integer<std::uint32_t>("staying");
  if (f.has("http2_connections"))
    s.http2Connections = f.integer<std::uint32_t>("http2_connections");
  if (f.has("http2_streams")) s.http2Streams = f.integer<std::uint32_t>("http2_streams");
  if (f.has("parked")) s.parked = f.integer<std::uint32_t>("parked");
  return f.finish(std::move(s));
}

ControlMessage Changed::encode() const {
  return make(kType, {{"seq", seq}, {"error", error}});
}

Decoded<Changed> Changed::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  Changed c;
  c.seq = f.integer<std::uint64_t>("seq");
  c.error = f.string("error");
  return f.finish(std::move(c));
}

Decoded<FromWorker> decodeFromWorker(ControlMessage& message) {
  return decodeOneOf<FromWorker>(message, message.type());
}

ControlMessage Spawn::encode() && {
  return withFd(make(kType, {{"drop", drop}, {"uid", uid}, {"gid", gid}}), std::move(control));
}

Decoded<Spawn> Spawn::decode(ControlMessage& message) {
  Fields f(message, kType, 1);
  Spawn s;
  s.drop = f.boolean("drop");
  s.uid = f.integer<uid_t>("uid");
  s.gid = f.integer<gid_t>("gid");
  s.control = f.fd(0);
  return f.finish(std::move(s));
}

ControlMessage Spawned::encode() const {
  return pid > 0 ? make(kType, {{"pid", pid}}) : make(kType, {{"error", error}});
}

Decoded<Spawned> Spawned::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  Spawned s;
  if (message.body.contains("error"))
    s.error = f.string("error");
  else
    s.pid = f.integer<pid_t>("pid", 1);
  return f.finish(std::move(s));
}

}  // namespace molt::common::control
