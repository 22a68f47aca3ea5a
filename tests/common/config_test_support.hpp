// Helpers of the config tests (tests/common/config*_test.cpp).
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "tests/support/memory_files.hpp"

namespace molt::test {

inline const MemoryFiles kNoFiles;

inline common::Config parse(std::string_view text, const MemoryFiles& files = kNoFiles) {
  try {
    return common::parseConfig(text, "molt.json", files.source());
  } catch (const common::ConfigErrors& e) {
    FAIL("unexpected config errors:\n" << e.what());
    throw;
  }
}

// Every error of `text` as printed by molt -c.
inline std::vector<std::string> errors(std::string_view text, const MemoryFiles& files = kNoFiles) {
  try {
    common::parseConfig(text, "molt.json", files.source());
  } catch (const common::ConfigErrors& e) {
    std::vector<std::string> out;
    for (const common::ConfigError& error : e.errors()) out.push_back(error.str());
    return out;
  }
  return {};
}

using Lines = std::vector<std::string>;

// Joins one string per line, so that a test reads its column numbers straight off its source.
inline std::string text(std::initializer_list<std::string_view> lines) {
  std::string out;
  for (std::string_view line : lines) out.append(line).append("\n");
  return out;
}

}  // namespace molt::test
