#include "common/control_messages.hpp"

#include <unistd.h>

#include <cstdint>

#include <catch2/catch.hpp>

using namespace molt::common;
using namespace molt::common::control;
using Catch::Matchers::Contains;

namespace {

UniqueFd pipeEnd() {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  close(fds[1]);
  return UniqueFd(fds[0]);
}

ControlMessage body(nlohmann::json j, std::size_t fds = 0) {
  ControlMessage m;
  m.body = std::move(j);
  for (std::size_t i = 0; i < fds; ++i) m.fds.push_back(pipeEnd());
  return m;
}

// Encodes, then decodes as the receiving side does.
template <class Variant, class Message>
Variant roundTrip(ControlMessage encoded, Decoded<Variant> (*decode)(ControlMessage&)) {
  auto decoded = decode(encoded);
  INFO(decoded.error);
  REQUIRE(decoded);
  REQUIRE(std::holds_alternative<Message>(*decoded.value));
  return std::move(*decoded.value);
}

// A stats report with every field set, each to a different value.
Stats sampleStats() {
  Stats s;
  s.connections = 3;
  s.migrated = 4;
  s.adopted = 5;
  s.staying = 6;
  s.http2Connections = 7;
  s.http2Streams = 8;
  s.parked = 9;
  return s;
}

}  // namespace

TEST_CASE("every master-to-worker message decodes to what was encoded", "[common][control]") {
  auto hello = std::get<Hello>(roundTrip<FromMaster, Hello>(
      Hello{kProtocolVersion, 7, 1, 2, pipeEnd()}.encode(), decodeFromMaster));
  REQUIRE(hello.protocol == kProtocolVersion);
  REQUIRE(hello.generation == 7);
  REQUIRE(hello.slot == 1);
  REQUIRE(hello.workers == 2);
  REQUIRE(hello.bundle);

  auto zone = std::get<ZoneGrant>(roundTrip<FromMaster, ZoneGrant>(
      ZoneGrant{ZoneGrantKind::TicketKeys, 4096, pipeEnd()}.encode(), decodeFromMaster));
  REQUIRE(zone.kind == ZoneGrantKind::TicketKeys);
  REQUIRE(zone.size == 4096);
  REQUIRE(zone.zone);

  auto listener = std::get<ListenerGrant>(roundTrip<FromMaster, ListenerGrant>(
      ListenerGrant{"www", 3, "127.0.0.1:80", pipeEnd()}.encode(), decodeFromMaster));
  REQUIRE(listener.frontend == "www");
  REQUIRE(listener.bind == 3);
  REQUIRE(listener.address == "127.0.0.1:80");

  roundTrip<FromMaster, Start>(Start{}.encode(), decodeFromMaster);
  auto drain =
      std::get<Drain>(roundTrip<FromMaster, Drain>(Drain{90'000}.encode(), decodeFromMaster));
  REQUIRE(drain.hardStopInMs == 90'000);
}

TEST_CASE("every change operation decodes to what was encoded", "[common][control]") {
  std::vector<ChangeOp> ops = {
      ServerPut{"bk", "web3", "127.0.0.1:8080", 5, 42},
      ServerRemove{"bk", "web3"},
      BackendAdd{{{"name", "bk2"}, {"servers", nlohmann::json::array()}}, 9},
      BackendDel{"bk2"},
      MapSet{"www", 1, "a.example", "bk_a"},
      MapDel{"www", 1, "a.example"},
      CertSet{"www", "site", "-----BEGIN CERTIFICATE-----"},
      CertDel{"www", "site"},
  };
  REQUIRE(ops.size() == std::variant_size_v<ChangeOp>);
  for (std::uint64_t seq = 0; seq < ops.size(); ++seq) {
    Change sent{seq + 100, ops[seq]};
    auto change = std::get<Change>(roundTrip<FromMaster, Change>(sent.encode(), decodeFromMaster));
    REQUIRE(change.seq == seq + 100);
    REQUIRE(change.op.index() == ops[seq].index());
    REQUIRE(opName(change.op) == opName(ops[seq]));
    REQUIRE(change.encode().body == sent.encode().body);
  }
}

TEST_CASE("every worker-to-master message decodes to what was encoded", "[common][control]") {
  auto ready =
      std::get<Ready>(roundTrip<FromWorker, Ready>(Ready{1234}.encode(), decodeFromWorker));
  REQUIRE(ready.pid == 1234);
  REQUIRE(ready.protocol == kProtocolVersion);
  auto stats = std::get<Stats>(roundTrip<FromWorker, Stats>(Stats{17}.encode(), decodeFromWorker));
  REQUIRE(stats.connections == 17);
  auto changed = std::get<Changed>(
      roundTrip<FromWorker, Changed>(Changed{9, "no backend x"}.encode(), decodeFromWorker));
  REQUIRE(changed.seq == 9);
  REQUIRE(changed.error == "no backend x");
}

TEST_CASE("the zygote's spawn and answer decode to what was encoded", "[common][control]") {
  ControlMessage m = Spawn{true, 65534, 65533, pipeEnd()}.encode();
  auto spawn = Spawn::decode(m);
  REQUIRE(spawn);
  REQUIRE(spawn->drop);
  REQUIRE(spawn->uid == 65534);
  REQUIRE(spawn->gid == 65533);
  REQUIRE(spawn->control);
  ControlMessage ok = Spawned{321, ""}.encode();
  REQUIRE(Spawned::decode(ok)->pid == 321);
  ControlMessage failed = Spawned{0, "EAGAIN"}.encode();
  auto answer = Spawned::decode(failed);
  REQUIRE(answer);
  REQUIRE(answer->pid == 0);
  REQUIRE(answer->error == "EAGAIN");
}

TEST_CASE("a worker's message with a field of the wrong type or range is refused, named",
          "[common][control]") {
  struct Case {
    nlohmann::json body;
    std::string error;
  };
  std::vector<Case> cases = {
      {{{"type", "stats"}, {"connections", "x"}}, "stats: connections: expected an integer"},
      {{{"type", "stats"}}, "stats: connections: missing"},
      {{{"type", "stats"}, {"connections", -1}}, "stats: connections: out of range"},
      {{{"type", "stats"}, {"connections", 1ull << 40}}, "stats: connections: out of range"},
      {{{"type", "stats"}, {"connections", 1.5}}, "stats: connections: expected an integer"},
      {{{"type", "changed"}, {"seq", 1}, {"error", 7}}, "changed: error: expected a string"},
      {{{"type", "changed"}, {"seq", "1"}, {"error", ""}}, "changed: seq: expected an integer"},
      {{{"type", "ready"}, {"pid", 0}, {"protocol", 2}}, "ready: pid: out of range"},
      {{{"type", "ready"}, {"pid", nullptr}, {"protocol", 2}}, "ready: pid: expected an integer"},
      {{{"type", "hello"}}, "unknown message type 'hello'"},
      {{{"type", "handoff"}}, "unknown message type 'handoff'"},
      {{{"type", 5}}, "a message without a type"},
      {{{"connections", 1}}, "a message without a type"},
  };
  for (auto& c : cases) {
    ControlMessage m = body(c.body);
    auto decoded = decodeFromWorker(m);
    INFO(c.body.dump());
    REQUIRE_FALSE(decoded);
    REQUIRE_THAT(decoded.error, Contains(c.error));
  }
}

TEST_CASE("a message with descriptors it should not carry, or without those it needs, is refused",
          "[common][control]") {
  ControlMessage stats = body({{"type", "stats"}, {"connections", 1}}, 1);
  auto decoded = decodeFromWorker(stats);
  REQUIRE_FALSE(decoded);
  REQUIRE_THAT(decoded.error, Contains("stats: expected 0 descriptor(s), got 1"));
  ControlMessage zone = body({{"type", "zone"}, {"kind", "server-state"}, {"size", 0}});
  auto noFd = decodeFromMaster(zone);
  REQUIRE_FALSE(noFd);
  REQUIRE_THAT(noFd.error, Contains("zone: expected 1 descriptor(s), got 0"));
}

TEST_CASE("a change with an unknown operation or a bad field is refused, named",
          "[common][control]") {
  ControlMessage unknown = body({{"type", "change"}, {"seq", 1}, {"op", "server.explode"}});
  auto a = decodeFromMaster(unknown);
  REQUIRE_FALSE(a);
  REQUIRE_THAT(a.error, Contains("change: op: unknown change 'server.explode'"));
  ControlMessage bad = body({{"type", "change"},
                             {"seq", 1},
                             {"op", "server.put"},
                             {"backend", "bk"},
                             {"server", "s"},
                             {"address", "127.0.0.1:1"},
                             {"weight", 70000},
                             {"index", 0}});
  auto b = decodeFromMaster(bad);
  REQUIRE_FALSE(b);
  REQUIRE_THAT(b.error, Contains("change: weight: out of range"));
  ControlMessage zone = body({{"type", "zone"}, {"kind", "secrets"}, {"size", 0}}, 1);
  auto c = decodeFromMaster(zone);
  REQUIRE_FALSE(c);
  REQUIRE_THAT(c.error, Contains("zone: kind: unknown zone kind 'secrets'"));
}

TEST_CASE("migration messages decode to what was encoded, input bytes included",
          "[common][control][migration]") {
  std::string input("GET / HTTP/1.1\r\n\r\n\x00\xff\x80", 21);
  MovingConnection http;
  http.kind = MigrateKind::Http;
  http.frontend = "www";
  http.input = input;
  http.client = pipeEnd();
  auto migrate = std::get<Migrate>(
      roundTrip<FromWorker, Migrate>(Migrate{41, std::move(http)}.encode(), decodeFromWorker));
  REQUIRE(migrate.id == 41);
  REQUIRE(migrate.connection.kind == MigrateKind::Http);
  REQUIRE(migrate.connection.frontend == "www");
  REQUIRE(migrate.connection.input == input);
  REQUIRE(migrate.connection.client);
  REQUIRE_FALSE(migrate.connection.upstream);

  MovingConnection tunnel;
  tunnel.kind = MigrateKind::Tunnel;
  tunnel.frontend = "www";
  tunnel.backend = "bk_1";
  tunnel.server = "s1";
  tunnel.client = pipeEnd();
  tunnel.upstream = pipeEnd();
  auto adopt = std::get<Adopt>(
      roundTrip<FromMaster, Adopt>(Adopt{9, std::move(tunnel)}.encode(), decodeFromMaster));
  REQUIRE(adopt.ticket == 9);
  REQUIRE(adopt.connection.kind == MigrateKind::Tunnel);
  REQUIRE(adopt.connection.backend == "bk_1");
  REQUIRE(adopt.connection.server == "s1");
  REQUIRE(adopt.connection.client);
  REQUIRE(adopt.connection.upstream);

  auto adopted = std::get<Adopted>(
      roundTrip<FromWorker, Adopted>(Adopted{9, "no frontend x"}.encode(), decodeFromWorker));
  REQUIRE(adopted.ticket == 9);
  REQUIRE(adopted.error == "no frontend x");
  auto migrated = std::get<Migrated>(
      roundTrip<FromMaster, Migrated>(Migrated{41, ""}.encode(), decodeFromMaster));
  REQUIRE(migrated.id == 41);
  REQUIRE(migrated.error.empty());

  auto drain =
      std::get<Drain>(roundTrip<FromMaster, Drain>(Drain{5, true}.encode(), decodeFromMaster));
  REQUIRE(drain.migrate);
  auto stats =
      std::get<Stats>(roundTrip<FromWorker, Stats>(sampleStats().encode(), decodeFromWorker));
  REQUIRE(stats.migrated == 4);
  REQUIRE(stats.adopted == 5);
  REQUIRE(stats.staying == 6);
  REQUIRE(stats.http2Connections == 7);
  REQUIRE(stats.http2Streams == 8);
  REQUIRE(stats.parked == 9);
  ControlMessage negative = body({{"type", "stats"}, {"connections", 2}, {"http2_streams", -1}});
  REQUIRE_FALSE(decodeFromWorker(negative));
  // An older worker's stats (no migration fields) still decode.
  ControlMessage old = body({{"type", "stats"}, {"connections", 2}});
  REQUIRE(decodeFromWorker(old));
}

TEST_CASE("a migrate with the wrong descriptors, kind, names or input is refused, named",
          "[common][control][migration]") {
  struct Case {
    nlohmann::json body;
    std::size_t fds;
    std::string error;
  };
  nlohmann::json ok = {{"type", "migrate"}, {"id", 1},      {"kind", "http"}, {"frontend", "www"},
                       {"backend", ""},     {"server", ""}, {"input", ""}};
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json b = ok;
    b[key] = std::move(value);
    return b;
  };
  std::vector<Case> cases = {
      {ok, 0, "migrate: expected 1 descriptor(s), got 0"},
      {ok, 2, "migrate: expected 1 descriptor(s), got 2"},
      {with("kind", "tunnel"), 1, "migrate: expected 2 descriptor(s), got 1"},
      {with("kind", "udp"), 1, "migrate: kind: unknown connection kind 'udp'"},
      {with("frontend", ""), 1, "migrate: frontend: expected a name"},
      {with("frontend", std::string(2000, 'f')), 1, "migrate: frontend: expected a name"},
      {with("input", "abc"), 1, "migrate: input: expected lowercase hex"},
      {with("input", "zz"), 1, "migrate: input: expected lowercase hex"},
      {with("input", std::string(2 * kMaxMigratedInput + 2, 'a')), 1, "migrate: input: more than"},
      {with("id", -1), 1, "migrate: id: out of range"},
      {with("input", 5), 1, "migrate: input: expected a string"},
  };
  nlohmann::json tunnelInput = with("kind", "tcp");
  tunnelInput["input"] = "00";
  cases.push_back({tunnelInput, 2, "migrate: input: only an http connection carries input"});
  for (auto& c : cases) {
    ControlMessage m = body(c.body, c.fds);
    auto decoded = decodeFromWorker(m);
    INFO(c.body.dump().substr(0, 200));
    REQUIRE_FALSE(decoded);
    REQUIRE_THAT(decoded.error, Contains(c.error));
  }
}

// The worker writes its stats report without nlohmann: the text must be the message encode()
// builds, and decode like it, at every field's largest value too.
TEST_CASE("a stats report written directly is the message encode() builds", "[common][control]") {
  Stats small = sampleStats();
  Stats large;
  large.connections = large.staying = large.http2Connections = large.http2Streams = large.parked =
      UINT32_MAX;
  large.migrated = large.adopted = UINT64_MAX;
  for (const Stats& s : {Stats{}, small, large}) {
    std::string text = s.text();
    INFO(text);
    REQUIRE(nlohmann::json::parse(text) == s.encode().body);
    ControlMessage received = body(nlohmann::json::parse(text));
    auto decoded =
        std::get<Stats>(roundTrip<FromWorker, Stats>(std::move(received), decodeFromWorker));
    REQUIRE(decoded.connections == s.connections);
    REQUIRE(decoded.migrated == s.migrated);
    REQUIRE(decoded.adopted == s.adopted);
    REQUIRE(decoded.staying == s.staying);
    REQUIRE(decoded.http2Connections == s.http2Connections);
    REQUIRE(decoded.http2Streams == s.http2Streams);
    REQUIRE(decoded.parked == s.parked);
  }
}
