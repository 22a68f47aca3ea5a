// Test support: side files served from memory, through a common::FileSource.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace molt::test {

// No temp files, and every read is visible to the test. `source()` refers to this object: keep
// it alive while the source is used.
struct MemoryFiles {
  std::map<std::string, std::string> files;
  std::map<std::string, std::vector<std::string>> dirs;

  common::FileSource source() const {
    common::FileSource s;
    s.read = [this](const std::string& path, std::string& error) -> std::optional<std::string> {
      auto it = files.find(path);
      if (it != files.end()) return it->second;
      error = dirs.count(path) ? "Is a directory" : "No such file or directory";
      return std::nullopt;
    };
    s.list = [this](const std::string& path,
                    std::string& error) -> std::optional<std::vector<std::string>> {
      auto it = dirs.find(path);
      if (it != dirs.end()) return it->second;
      error = files.count(path) ? "Not a directory" : "No such file or directory";
      return std::nullopt;
    };
    return s;
  }
};

}  // namespace molt::test
