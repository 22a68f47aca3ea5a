// libFuzzer target: the control-protocol decoders (what a worker may send the master, what the
// master sends a worker, the zygote's messages) and the binary-upgrade inventory check, over
// arbitrary JSON. A message that decodes must encode back to one that decodes the same.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/control_messages.hpp"
#include "master/inventory_check.hpp"

using namespace molt::common;

namespace {

ControlMessage message(const nlohmann::json& body, unsigned fds) {
  ControlMessage m;
  m.body = body;
  for (unsigned i = 0; i < fds; ++i) m.fds.emplace_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  unsigned fds = data[0] % 3;
  auto body = nlohmann::json::parse(
      std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), nullptr, false);
  if (body.is_discarded()) return 0;
  (void)molt::master::validateInventory(body);
  if (!body.is_object()) return 0;
  ControlMessage fromWorker = message(body, fds);
  if (auto decoded = control::decodeFromWorker(fromWorker))
    if (auto* migrate = std::get_if<control::Migrate>(&*decoded.value)) {
      // A connection passed on must arrive as it was sent: input bytes, names, descriptors.
      std::string input = migrate->connection.input;
      ControlMessage again = control::Migrate{migrate->id, std::move(migrate->connection)}.encode();
      nlohmann::json sent = again.body;
      auto round = control::Migrate::decode(again);
      if (!round || round->connection.input != input) __builtin_trap();
      if (control::Migrate{round->id, std::move(round->connection)}.encode().body != sent)
        __builtin_trap();
    }
  ControlMessage fromMaster = message(body, fds);
  if (auto decoded = control::decodeFromMaster(fromMaster))
    if (auto* change = std::get_if<control::Change>(&*decoded.value)) {
      ControlMessage again = change->encode();
      auto round = control::Change::decode(again);
      if (!round || round->encode().body != again.body) __builtin_trap();
    }
  ControlMessage spawn = message(body, fds);
  (void)control::Spawn::decode(spawn);
  ControlMessage spawned = message(body, fds);
  (void)control::Spawned::decode(spawned);
  return 0;
}
