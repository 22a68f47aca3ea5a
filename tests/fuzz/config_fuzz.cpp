// libFuzzer target: the JSONC config parser and every validation step after it (the operator's
// input: a file molt -c, a start and every reload read). Side files come from memory.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/config.hpp"
#include "tests/support/memory_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const molt::test::MemoryFiles files{
      {{"/etc/molt/hosts.map", "a.example.com a\n*.b.example.com b\n"},
       {"/etc/molt/state", ""}},
      {{"/etc/molt/certs", {}}}};
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    molt::common::Config config = molt::common::parseConfig(text, "fuzz.json", files.source());
    (void)config.findBackend("a");
  } catch (const molt::common::ConfigErrors& e) {
    for (const auto& error : e.errors()) (void)error.str();
  }
  return 0;
}
