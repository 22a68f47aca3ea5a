// The handover bundle: what a worker needs to build its copy of a generation's config.
//
// A sealed memfd written by the master: the config file's text and every side file it read
// (host maps, certificates), so a worker sees exactly the bytes the master validated even if the
// files change on disk meanwhile, and the journal of runtime changes to replay over it
// (common/journal_text.hpp). Layout: "MOLTBNDL" u32 version, u32 count, then `count` records
// {u32 nameLength, u64 dataLength, name, data}; record 0 is the config (name = the file's path);
// from version 2 record 1 is the journal (name "journal", JSON lines, empty for none); the rest
// are side files (name = path). Version 1 (no journal record) is still read: a binary upgrade
// hands the new binary the old one's bundles.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "common/config.hpp"
#include "common/unique_fd.hpp"

namespace molt::common {

struct Bundle {
  std::string configPath;
  std::string configText;
  std::unordered_map<std::string, std::string> files;  // side files by path
  std::string journal;  // runtime changes to apply after parsing, as JSON lines; "" for none

  // A FileSource that serves `files` (directory listings derived from the paths held).
  FileSource fileSource() const;
};

// Writes `bundle` into a new sealed memfd named "molt-bundle". Returns an invalid fd and sets
// `error` on failure.
UniqueFd writeBundle(const Bundle& bundle, std::string& error);

// Reads a bundle from a memfd. Returns nullopt and sets `error` when it is not a valid bundle.
std::optional<Bundle> readBundle(int fd, std::string& error);

}  // namespace molt::common
