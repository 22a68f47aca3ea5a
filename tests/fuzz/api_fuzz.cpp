// libFuzzer target: the runtime API's change commands as the master takes them (one JSON request
// line, validated and applied to a config by the config's own parser), then journalled (folds,
// and the journal's text form read back).
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/runtime_change.hpp"
#include "master/journal.hpp"
#include "tests/support/memory_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const molt::test::MemoryFiles files{
      {{"/maps/hosts.map", "one.example.com 1\n"}, {"/certs/site.pem", "PEM"}}, {}};
  static const molt::common::Config base = molt::common::parseConfig(R"({
    "frontends": [{"name": "www", "mode": "http",
                   "bind": ["127.0.0.1:0", {"address": "127.0.0.1:0", "tls": true}],
                   "certificates": ["/certs/site.pem"],
                   "routes": [{"host_map": "/maps/hosts.map", "backend_prefix": "bk_"}],
                   "default_backend": "bk_1"}],
    "backends": [{"name": "bk_1", "servers": [{"name": "s", "address": "127.0.0.1:1"}]},
                 {"name": "bk_2"}]})",
                                                                     "fuzz.json", files.source());
  // One request a line, like the socket: a sequence of changes on the same config and journal.
  molt::common::Config config = base;
  molt::master::Journal journal;
  std::string text(reinterpret_cast<const char*>(data), size);
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    auto request = nlohmann::json::parse(text.substr(start, end - start), nullptr, false);
    start = end + 1;
    if (request.is_discarded()) continue;
    (void)molt::common::describeRuntimeChange(request);
    if (molt::common::applyRuntimeChange(config, request, files.source()).empty())
      journal.append(request);
  }
  molt::master::Journal readBack;
  std::string error;
  if (!readBack.fromText(journal.toText(), error)) __builtin_trap();  // its own text reads back
  return 0;
}
