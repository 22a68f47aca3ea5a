// libFuzzer target: the host-map file parser (one "host value" pair a line, comments, blank
// lines), read through a config that routes by it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/config.hpp"
#include "tests/support/memory_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static constexpr const char* kConfig = R"({
    "frontends": [{"name": "www", "mode": "http", "bind": ["127.0.0.1:0"],
                   "routes": [{"host_map": "/map", "backend_prefix": "bk_"}],
                   "default_backend": "bk_a"}],
    "backends": [{"name": "bk_a"}, {"name": "bk_b"}, {"name": "bk_1"}]})";
  molt::test::MemoryFiles files;
  files.files["/map"] = std::string(reinterpret_cast<const char*>(data), size);
  try {
    molt::common::Config config = molt::common::parseConfig(kConfig, "fuzz.json", files.source());
    for (const auto& [host, value] : config.frontends[0].routes[0].mapEntries)
      if (host.empty()) __builtin_trap();  // a parsed entry always has a host
  } catch (const molt::common::ConfigErrors&) {
  }
  return 0;
}
