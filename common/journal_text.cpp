#include "common/journal_text.hpp"

#include "common/runtime_change.hpp"

namespace molt::common {

std::string formatJournalText(const std::vector<nlohmann::json>& changes) {
  std::string text;
  for (const nlohmann::json& change : changes) {
    text += change.dump();
    text += '\n';
  }
  return text;
}

std::optional<std::vector<nlohmann::json>> parseJournalText(std::string_view text,
                                                            std::string& error) {
  std::vector<nlohmann::json> changes;
  for (std::size_t lineNo = 1; !text.empty(); ++lineNo) {
    std::size_t eol = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(std::min(eol + 1, text.size()));
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json change = nlohmann::json::parse(line, nullptr, false);
    if (change.is_discarded()) {
      error = "line " + std::to_string(lineNo) + ": not valid JSON";
      return std::nullopt;
    }
    auto cmd = change.is_object() ? change.find("cmd") : change.end();
    if (!change.is_object() || cmd == change.end() || !cmd->is_string()) {
      error = "line " + std::to_string(lineNo) + ": expected an object with a string \"cmd\"";
      return std::nullopt;
    }
    changes.push_back(std::move(change));
  }
  return changes;
}

std::string replayJournalText(Config& config, std::string_view text, const FileSource& files) {
  std::string error;
  auto changes = parseJournalText(text, error);
  if (!changes) return "journal " + error;
  for (std::size_t i = 0; i < changes->size(); ++i) {
    nlohmann::json& change = (*changes)[i];
    std::string description = describeRuntimeChange(change);
    error = applyRuntimeChange(config, change, files);
    if (!error.empty()) {
      return "journal entry " + std::to_string(i + 1) + " (" + description + "): " + error;
    }
  }
  return "";
}

}  // namespace molt::common
