#include "common/control_messages.hpp"

#include <limits>
#include <utility>

namespace molt::common::control {
namespace {

// Reads the fields of one message, keeping the first problem as "type: field: what".
class Fields {
 public:
  Fields(ControlMessage& message, std::string_view type, std::size_t fds)
      : Fields(message, type, fds, fds) {}
  // A message whose descriptor count depends on a field: between minFds and maxFds here, the
  // exact count checked by the caller (expectFds).
  Fields(ControlMessage& message, std::string_view type, std::size_t minFds, std::size_t maxFds)
      : message_(message), type_(type) {
    if (message.fds.size() < minFds || message.fds.size() > maxFds) expectFds(minFds);
  }
  void expectFds(std::size_t fds) {
    if (message_.fds.size() != fds)
      fail("", "expected " + std::to_string(fds) + " descriptor(s), got " +
                   std::to_string(message_.fds.size()));
  }
  // True when `key` is present (for fields an older peer does not send).
  bool has(const char* key) const { return message_.body.contains(key); }
  // For a change's operation: its fields are read from the same body.
  const nlohmann::json& body() const { return message_.body; }

  std::string string(const char* key) {
    const nlohmann::json* v = find(key);
    if (!v) return {};
    if (!v->is_string()) return fail(key, "expected a string"), std::string();
    return v->get<std::string>();
  }

  template <class T>
  T integer(const char* key, T min = std::numeric_limits<T>::min(),
            T max = std::numeric_limits<T>::max()) {
    const nlohmann::json* v = find(key);
    if (!v) return T{};
    bool fits = false;
    if (!v->is_number_integer()) return fail(key, "expected an integer"), T{};
    if (v->is_number_unsigned() || v->get<std::int64_t>() >= 0) {
      auto n = v->get<std::uint64_t>();
      fits = n <= static_cast<std::uint64_t>(max) &&
             (min <= 0 || n >= static_cast<std::uint64_t>(min));
    } else {
      auto n = v->get<std::int64_t>();
      fits = std::numeric_limits<T>::is_signed && n >= static_cast<std::int64_t>(min);
    }
    if (!fits)
      return fail(key, "out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]"),
             T{};
    return v->get<T>();
  }

  bool boolean(const char* key) {
    const nlohmann::json* v = find(key);
    if (!v) return false;
    if (!v->is_boolean()) return fail(key, "expected true or false"), false;
    return v->get<bool>();
  }

  nlohmann::json object(const char* key) {
    const nlohmann::json* v = find(key);
    if (!v) return nullptr;
    if (!v->is_object()) return fail(key, "expected an object"), nullptr;
    return *v;
  }

  UniqueFd fd(std::size_t index) {
    return index < message_.fds.size() ? std::move(message_.fds[index]) : UniqueFd();
  }

  void fail(std::string_view key, const std::string& what) {
    if (!error_.empty()) return;
    error_ = std::string(type_) + ": ";
    if (!key.empty()) error_ += std::string(key) + ": ";
    error_ += what;
  }

  template <class T>
  Decoded<T> finish(T&& value) {
    Decoded<T> out;
    if (error_.empty())
      out.value.emplace(std::move(value));
    else
      out.error = std::move(error_);
    return out;
  }

 private:
  const nlohmann::json* find(const char* key) {
    auto it = message_.body.find(key);
    if (it == message_.body.end()) {
      fail(key, "missing");
      return nullptr;
    }
    return &*it;
  }

  ControlMessage& message_;
  std::string_view type_;
  std::string error_;
};

ControlMessage make(std::string_view type, nlohmann::json body = nlohmann::json::object()) {
  ControlMessage m;
  m.body = std::move(body);
  m.body["type"] = type;
  return m;
}

ControlMessage withFd(ControlMessage m, UniqueFd fd) {
  m.fds.push_back(std::move(fd));
  return m;
}

// Bytes as lowercase hex: a JSON string must be UTF-8, input bytes are anything.
std::string toHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// False when `hex` is not lowercase hex of an even length.
bool fromHex(std::string_view hex, std::string& out) {
  if (hex.size() % 2) return false;
  out.clear();
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hexDigit(hex[i]), lo = hexDigit(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi << 4 | lo);
  }
  return true;
}

constexpr std::pair<MigrateKind, std::string_view> kMigrateKinds[] = {
    {MigrateKind::Http, "http"},
    {MigrateKind::Tunnel, "tunnel"},
    {MigrateKind::Tcp, "tcp"},
};

// Names as long as these are no config's: a longer one is a broken or hostile peer.
constexpr std::size_t kMaxName = 1024;

// A MovingConnection's fields, for "migrate" and "adopt" alike.
nlohmann::json connectionBody(const MovingConnection& c) {
  return {{"kind", kindName(c.kind)},
          {"frontend", c.frontend},
          {"backend", c.backend},
          {"server", c.server},
          {"input", toHex(c.input)}};
}

ControlMessage withConnection(ControlMessage m, MovingConnection& c) {
  m.fds.push_back(std::move(c.client));
  if (c.kind != MigrateKind::Http) m.fds.push_back(std::move(c.upstream));
  return m;
}

MovingConnection readConnection(Fields& f) {
  MovingConnection c;
  std::string kind = f.string("kind");
  bool known = false;
  for (const auto& [k, n] : kMigrateKinds)
    if (n == kind) c.kind = k, known = true;
  if (!known) f.fail("kind", "unknown connection kind '" + kind.substr(0, 64) + "'");
  f.expectFds(c.kind == MigrateKind::Http ? 1 : 2);
  c.frontend = f.string("frontend");
  c.backend = f.string("backend");
  c.server = f.string("server");
  if (c.frontend.empty() || c.frontend.size() > kMaxName) f.fail("frontend", "expected a name");
  if (c.backend.size() > kMaxName) f.fail("backend", "too long");
  if (c.server.size() > kMaxName) f.fail("server", "too long");
  std::string hex = f.string("input");
  if (hex.size() > 2 * kMaxMigratedInput)
    f.fail("input", "more than " + std::to_string(kMaxMigratedInput) + " bytes");
  else if (!fromHex(hex, c.input))
    f.fail("input", "expected lowercase hex");
  if (c.kind != MigrateKind::Http && !c.input.empty())
    f.fail("input", "only an http connection carries input");
  c.client = f.fd(0);
  if (c.kind != MigrateKind::Http) c.upstream = f.fd(1);
  return c;
}

constexpr std::pair<ZoneGrantKind, std::string_view> kZoneKinds[] = {
    {ZoneGrantKind::SessionCache, "session-cache"},
    {ZoneGrantKind::ServerState, "server-state"},
    {ZoneGrantKind::ServerLoad, "server-load"},
    {ZoneGrantKind::TicketKeys, "ticket-keys"},
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

std::string_view kindName(MigrateKind kind) {
  for (const auto& [k, n] : kMigrateKinds)
    if (k == kind) return n;
  return "?";
}

ControlMessage Adopt::encode() && {
  nlohmann::json body = connectionBody(connection);
  body["ticket"] = ticket;
  return withConnection(make(kType, std::move(body)), connection);
}

Decoded<Adopt> Adopt::decode(ControlMessage& message) {
  Fields f(message, kType, 1, 2);
  Adopt a;
  a.ticket = f.integer<std::uint64_t>("ticket");
  a.connection = readConnection(f);
  return f.finish(std::move(a));
}

ControlMessage Migrated::encode() const {
  return make(kType, {{"id", id}, {"error", error}});
}

Decoded<Migrated> Migrated::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  Migrated m;
  m.id = f.integer<std::uint64_t>("id");
  m.error = f.string("error");
  return f.finish(std::move(m));
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

ControlMessage Stats::encode() const {
  return make(kType, {{"connections", connections},
                      {"migrated", migrated},
                      {"adopted", adopted},
                      {"staying", staying}});
}

Decoded<Stats> Stats::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  Stats s;
  s.connections = f.integer<std::uint32_t>("connections");
  if (f.has("migrated")) s.migrated = f.integer<std::uint64_t>("migrated");
  if (f.has("adopted")) s.adopted = f.integer<std::uint64_t>("adopted");
  if (f.has("staying")) s.staying = f.integer<std::uint32_t>("staying");
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

ControlMessage Migrate::encode() && {
  nlohmann::json body = connectionBody(connection);
  body["id"] = id;
  return withConnection(make(kType, std::move(body)), connection);
}

Decoded<Migrate> Migrate::decode(ControlMessage& message) {
  Fields f(message, kType, 1, 2);
  Migrate m;
  m.id = f.integer<std::uint64_t>("id");
  m.connection = readConnection(f);
  return f.finish(std::move(m));
}

ControlMessage Adopted::encode() const {
  return make(kType, {{"ticket", ticket}, {"error", error}});
}

Decoded<Adopted> Adopted::decode(ControlMessage& message) {
  Fields f(message, kType, 0);
  Adopted a;
  a.ticket = f.integer<std::uint64_t>("ticket");
  a.error = f.string("error");
  return f.finish(std::move(a));
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
