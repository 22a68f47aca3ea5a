// The messages that move a connection between workers (protocol v3): migrate, adopt, adopted,
// migrated. The protocol's description is in control_messages.hpp.
#include <utility>

#include "common/control_fields.hpp"
#include "common/control_messages.hpp"

namespace molt::common::control {
namespace {

using detail::Fields;
using detail::make;

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

}  // namespace

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

}  // namespace molt::common::control
