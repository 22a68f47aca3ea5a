// Master: the journal of runtime changes, so that they outlive the config they were applied to.
//
// Every change the runtime API applies (common/runtime_change.hpp) is appended here, in the form
// applyRuntimeChange left it (self-contained: a cert.set holds its PEM). A reload, a binary
// upgrade and (with global.state_file) a restart parse the config file afresh and replay the
// journal over it; workers get the same entries as text in their handover bundle
// (common/journal_text.hpp). Owned by the Master; loop thread only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/config.hpp"

namespace molt::master {

// A journal entry that no longer applies to the config it was replayed over.
struct JournalConflict {
  std::size_t index = 0;  // its position in the journal before the replay, from 0
  std::string change;     // describeRuntimeChange: "server.add bk_1 web3"
  std::string error;      // applyRuntimeChange's reason
  // "runtime change 3 (server.add bk_1 web3) dropped: server: bk_1 already has ..."; one line
  // as `errors` lists it.
  std::string str() const;
};

class Journal {
 public:
  // Records a change applyRuntimeChange accepted. Pairs that cancel out are compacted away, as are
  // entries a later one overrides: each change kind's fold (master/change_kinds.hpp) says which.
  void append(nlohmann::json change);
  // Erases the entries `drop(index, entry)` selects; returns how many (for the kinds' folds).
  template <class Predicate>
  std::size_t dropWhere(Predicate drop) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (drop(i, entries_[i])) continue;
      if (kept != i) entries_[kept] = std::move(entries_[i]);
      ++kept;
    }
    std::size_t dropped = entries_.size() - kept;
    entries_.resize(kept);
    return dropped;
  }
  const std::vector<nlohmann::json>& entries() const { return entries_; }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  void clear() { entries_.clear(); }

  // Applies every entry in order to `config`, freshly parsed. An entry that fails is dropped from
  // the journal and returned (reported once: the next replay no longer has it). To keep the
  // journal unchanged until the new config serves, replay a copy and assign it on success.
  std::vector<JournalConflict> replay(common::Config& config, const common::FileSource& files);

  // JSON lines (common/journal_text.hpp): the bundle's journal, and the text an exec carries.
  std::string toText() const;
  // Replaces the entries with those of `text`. False and `error` ("line 3: ...") when a line is
  // not a change; the journal is then unchanged.
  bool fromText(std::string_view text, std::string& error);

  // Writes toText() to `path` atomically: a temporary file in the same directory, mode 0600 (the
  // journal may hold private keys), fsync, rename over `path`, fsync of the directory. False and
  // `error` naming the call and the file on failure; `path` is then as it was.
  bool saveStateFile(const std::string& path, std::string& error) const;
  // Replaces the entries with those of the file at `path`; an absent file is an empty journal.
  // False and `error` ("PATH: line 3: ...") when it cannot be read or a line is not a change.
  bool loadStateFile(const std::string& path, std::string& error);

 private:
  std::vector<nlohmann::json> entries_;
};

}  // namespace molt::master
