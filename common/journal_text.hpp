// The journal of runtime changes as text: one change request (a JSON object with a string "cmd";
// common/runtime_change.hpp) a line, in the order they were applied. The master keeps the journal
// (master/journal.hpp) and writes this text into the handover bundle, across a binary upgrade's
// exec, and into global.state_file.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/config.hpp"

namespace molt::common {

// One line per change, each ending in '\n'; "" for none.
std::string formatJournalText(const std::vector<nlohmann::json>& changes);

// The changes of `text`; blank lines are skipped. nullopt and `error` ("line 3: expected an
// object with a string \"cmd\"") when a line is not a change.
std::optional<std::vector<nlohmann::json>> parseJournalText(std::string_view text,
                                                            std::string& error);

// For a worker: applies the changes of `text` in order to the config it parsed from its bundle.
// Returns "" or the first problem ("journal entry 2 (server.add bk_1 web3): ..."), stopping there.
// The master hands over only changes it applied cleanly to the same config, so a problem means
// the two disagree. Never throws but std::bad_alloc.
std::string replayJournalText(Config& config, std::string_view text, const FileSource& files);

}  // namespace molt::common
