#include "common/journal_text.hpp"

#include <catch2/catch.hpp>

using namespace molt::common;
using nlohmann::json;

namespace {

constexpr const char* kConfig = R"({"backends": [
  {"name": "bk_1", "servers": [{"name": "web1", "address": "127.0.0.1:8001"}]}]})";

const FileSource kNoFiles{[](const std::string&, std::string& error) -> std::optional<std::string> {
                            error = "no files";
                            return std::nullopt;
                          },
                          nullptr};

}  // namespace

TEST_CASE("journal text is one change a line and reads back the same", "[journal]") {
  std::vector<json> changes = {
      {{"cmd", "server.set"}, {"backend", "bk_1"}, {"server", "web1"}, {"weight", 3}},
      {{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "a"}, {"pem", "line1\nline2\n"}}};
  std::string text = formatJournalText(changes);
  CHECK(std::count(text.begin(), text.end(), '\n') == 2);
  std::string error;
  auto back = parseJournalText(text, error);
  REQUIRE(back);
  CHECK(*back == changes);
  CHECK(formatJournalText({}).empty());
  CHECK(parseJournalText("\n  \n", error)->empty());
}

TEST_CASE("journal text with a line that is not a change is refused, naming the line",
          "[journal]") {
  std::string error;
  CHECK_FALSE(parseJournalText("{\"cmd\": \"server.del\"}\n{\"cmd\": \n", error));
  CHECK(error == "line 2: not valid JSON");
  CHECK_FALSE(parseJournalText("\n[1, 2]\n", error));
  CHECK(error == "line 2: expected an object with a string \"cmd\"");
  CHECK_FALSE(parseJournalText("{\"cmd\": 3}", error));
  CHECK(error == "line 1: expected an object with a string \"cmd\"");
}

TEST_CASE("a worker replays its bundle's journal over the config it parsed", "[journal]") {
  Config config = parseConfig(kConfig, "molt.json", kNoFiles);
  std::string text = formatJournalText(
      {{{"cmd", "server.add"},
        {"backend", "bk_1"},
        {"server", {{"name", "web2"}, {"address", "127.0.0.1:8002"}}}},
       {{"cmd", "server.set"}, {"backend", "bk_1"}, {"server", "web1"}, {"state", "drain"}}});
  REQUIRE(replayJournalText(config, text, kNoFiles) == "");
  REQUIRE(config.backends[0].servers.size() == 2);
  CHECK(config.backends[0].servers[0].admin == ServerAdmin::Drain);

  Config fresh = parseConfig(kConfig, "molt.json", kNoFiles);
  std::string conflicting =
      formatJournalText({{{"cmd", "server.del"}, {"backend", "bk_1"}, {"server", "web1"}},
                         {{"cmd", "server.del"}, {"backend", "bk_1"}, {"server", "web1"}}});
  CHECK(replayJournalText(fresh, conflicting, kNoFiles) ==
        "journal entry 2 (server.del bk_1 web1): server: bk_1 has no server named 'web1'");
  CHECK(replayJournalText(fresh, "nope\n", kNoFiles) == "journal line 1: not valid JSON");
}
