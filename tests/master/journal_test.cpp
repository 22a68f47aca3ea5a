#include "master/journal.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/runtime_change.hpp"

using molt::master::Journal;
using molt::master::JournalConflict;
using nlohmann::json;
namespace common = molt::common;

namespace {

// A scratch directory, removed with what it holds.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char name[] = "/tmp/molt-journal-XXXXXX";
    REQUIRE(mkdtemp(name));
    path = name;
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path))
      out.push_back(e.path().filename());
    return out;
  }
};

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const common::FileSource kNoFiles{
    [](const std::string&, std::string& error) -> std::optional<std::string> {
      error = "no files";
      return std::nullopt;
    },
    nullptr};

common::Config parse(const std::string& backends) {
  return common::parseConfig(R"({"backends": [)" + backends + "]}", "molt.json", kNoFiles);
}

// Applies `change` to `config` and journals it, as the master's API handler does.
void applyAndRecord(common::Config& config, Journal& journal, json change) {
  REQUIRE(common::applyRuntimeChange(config, change, kNoFiles) == "");
  journal.append(std::move(change));
}

json serverAdd(const std::string& backend, const std::string& name, int port) {
  return {{"cmd", "server.add"},
          {"backend", backend},
          {"server", {{"name", name}, {"address", "127.0.0.1:" + std::to_string(port)}}}};
}

json serverSet(const std::string& backend, const std::string& name, int weight) {
  return {{"cmd", "server.set"}, {"backend", backend}, {"server", name}, {"weight", weight}};
}

json serverDel(const std::string& backend, const std::string& name) {
  return {{"cmd", "server.del"}, {"backend", backend}, {"server", name}};
}

std::vector<std::string> cmds(const Journal& journal) {
  std::vector<std::string> out;
  for (const json& e : journal.entries()) out.push_back(common::describeRuntimeChange(e));
  return out;
}

using Names = std::vector<std::string>;

}  // namespace

TEST_CASE("replay applies the journal to a new config and drops, once, the changes that conflict",
          "[journal]") {
  common::Config before = parse(R"({"name": "bk_1", "servers": [
      {"name": "web1", "address": "127.0.0.1:8001"}]})");
  Journal journal;
  applyAndRecord(before, journal, serverAdd("bk_1", "web3", 8003));
  applyAndRecord(before, journal, {{"cmd", "backend.add"}, {"backend", {{"name", "bk_new"}}}});
  applyAndRecord(before, journal, serverAdd("bk_new", "n1", 9001));
  applyAndRecord(before, journal, serverSet("bk_1", "web1", 4));

  // The file now declares web3 and bk_new itself.
  const std::string edited = R"({"name": "bk_1", "servers": [
      {"name": "web1", "address": "127.0.0.1:8001"}, {"name": "web3", "address": "127.0.0.1:8103"}]},
      {"name": "bk_new"})";
  common::Config after = parse(edited);
  std::vector<JournalConflict> conflicts = journal.replay(after, kNoFiles);
  REQUIRE(conflicts.size() == 2);
  CHECK(conflicts[0].index == 0);
  CHECK(conflicts[0].change == "server.add bk_1 web3");
  CHECK(conflicts[0].error == "server: bk_1 already has a server named 'web3'");
  CHECK(conflicts[0].str() ==
        "runtime change 1 (server.add bk_1 web3) dropped: server: bk_1 already has a server "
        "named 'web3'");
  CHECK(conflicts[1].index == 1);
  CHECK(conflicts[1].error == "backend.name: a backend named 'bk_new' already exists");
  // The rest applied over the file's servers and backends.
  CHECK(after.findBackend("bk_1")->servers[1].address.text() == "127.0.0.1:8103");
  CHECK(after.findBackend("bk_1")->servers[0].weight == 4);
  CHECK(after.findBackend("bk_new")->servers.size() == 1);
  CHECK(cmds(journal) == Names{"server.add bk_new n1", "server.set bk_1 web1"});

  // Reported once: the next replay over the same file is clean.
  common::Config again = parse(edited);
  CHECK(journal.replay(again, kNoFiles).empty());
  CHECK(journal.size() == 2);
}

TEST_CASE("a conflict drops the changes that depended on it too", "[journal]") {
  common::Config before = parse(R"({"name": "bk_1"})");
  Journal journal;
  applyAndRecord(before, journal, serverAdd("bk_1", "web1", 8001));
  applyAndRecord(before, journal, serverSet("bk_1", "web1", 9));
  common::Config after = parse(R"({"name": "bk_2"})");  // bk_1 renamed in the file
  auto conflicts = journal.replay(after, kNoFiles);
  REQUIRE(conflicts.size() == 2);
  CHECK(conflicts[1].change == "server.set bk_1 web1");
  CHECK(journal.empty());
}

TEST_CASE("journal text round-trips, and a malformed text leaves the journal as it was",
          "[journal]") {
  Journal journal;
  journal.append(serverSet("bk_1", "web1", 2));
  journal.append({{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "a"}, {"pem", "A\nB\n"}});
  std::string text = journal.toText();
  Journal copy;
  std::string error;
  REQUIRE(copy.fromText(text, error));
  CHECK(copy.entries() == journal.entries());
  CHECK_FALSE(copy.fromText(text + "{oops\n", error));
  CHECK(error == "line 3: not valid JSON");
  CHECK(copy.entries() == journal.entries());
}

TEST_CASE("the state file round-trips with mode 0600 and is replaced atomically", "[journal]") {
  ScratchDir dir;
  std::string path = dir.path + "/molt.state";
  {
    std::ofstream old(path);
    old << "an older state\n";
  }
  REQUIRE(chmod(path.c_str(), 0644) == 0);
  struct stat oldStat {};
  REQUIRE(stat(path.c_str(), &oldStat) == 0);

  Journal journal;
  journal.append(serverSet("bk_1", "web1", 2));
  journal.append({{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "a"}, {"pem", "KEY"}});
  mode_t umaskBefore = umask(0);  // a permissive umask must not widen the mode
  std::string error;
  bool saved = journal.saveStateFile(path, error);
  umask(umaskBefore);
  REQUIRE(saved);
  INFO(error);
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(st.st_ino != oldStat.st_ino);         // a new file renamed over the old one, not rewritten
  CHECK(dir.names() == Names{"molt.state"});  // no temporary file left behind
  CHECK(readFile(path) == journal.toText());

  Journal loaded;
  REQUIRE(loaded.loadStateFile(path, error));
  CHECK(loaded.entries() == journal.entries());
}

TEST_CASE("an absent state file is an empty journal; a malformed one is an error naming the line",
          "[journal]") {
  ScratchDir dir;
  std::string path = dir.path + "/molt.state";
  Journal journal;
  journal.append(serverSet("bk_1", "web1", 2));
  std::string error;
  REQUIRE(journal.loadStateFile(path, error));
  CHECK(journal.empty());

  {
    std::ofstream bad(path);
    bad << serverSet("bk_1", "web1", 2).dump() << "\n"
        << "\"not a change\"\n";
  }
  CHECK_FALSE(journal.loadStateFile(path, error));
  CHECK(error == path + ": line 2: expected an object with a string \"cmd\"");
  CHECK_FALSE(journal.loadStateFile(dir.path, error));  // a directory cannot be read
  CHECK(error.rfind("read(" + dir.path + "): ", 0) == 0);
}

TEST_CASE("a state file that cannot be written is reported and the old one kept", "[journal]") {
  ScratchDir dir;
  Journal journal;
  journal.append(serverSet("bk_1", "web1", 2));
  std::string error;
  std::string missing = dir.path + "/no/such/dir/molt.state";
  CHECK_FALSE(journal.saveStateFile(missing, error));
  CHECK(error.rfind("open(" + missing + ".tmp.", 0) == 0);
  CHECK(dir.names().empty());
}

TEST_CASE("journal compaction: a server added then deleted leaves nothing", "[journal]") {
  common::Config config = parse(R"({"name": "bk_1", "servers": [
      {"name": "web1", "address": "127.0.0.1:8001"}]}, {"name": "bk_2"})");
  Journal journal;
  applyAndRecord(config, journal, serverAdd("bk_1", "web3", 8003));
  applyAndRecord(config, journal, serverAdd("bk_2", "x", 9000));
  applyAndRecord(config, journal, serverSet("bk_1", "web3", 5));
  applyAndRecord(config, journal, serverSet("bk_1", "web1", 5));
  applyAndRecord(config, journal, serverDel("bk_1", "web3"));
  CHECK(cmds(journal) == Names{"server.add bk_2 x", "server.set bk_1 web1"});
  // A server of the file is deleted by an entry that stays.
  applyAndRecord(config, journal, serverDel("bk_1", "web1"));
  CHECK(journal.size() == 3);
}

TEST_CASE(
    "journal compaction: a backend added then deleted leaves nothing unless a map entry came "
    "between",
    "[journal]") {
  common::Config config = parse(R"({"name": "bk_1"})");
  Journal journal;
  json addBackend = {{"cmd", "backend.add"}, {"backend", {{"name", "bk_9"}}}};
  json delBackend = {{"cmd", "backend.del"}, {"backend", "bk_9"}};
  applyAndRecord(config, journal, addBackend);
  applyAndRecord(config, journal, serverAdd("bk_9", "s", 9000));
  applyAndRecord(config, journal, serverSet("bk_9", "s", 3));
  applyAndRecord(config, journal, serverAdd("bk_1", "t", 9001));
  applyAndRecord(config, journal, delBackend);
  CHECK(cmds(journal) == Names{"server.add bk_1 t"});

  // With a map.* entry between, the pair is kept (the map entry may have pointed at the backend).
  journal.clear();
  journal.append(addBackend);
  journal.append({{"cmd", "map.del"}, {"frontend", "www"}, {"host", "a.example.com"}});
  journal.append(delBackend);
  CHECK(journal.size() == 3);
}

TEST_CASE("journal compaction: certificates and map entries keep only their last setting",
          "[journal]") {
  Journal journal;
  auto cert = [](std::string name, std::string pem) {
    return json{{"cmd", "cert.set"}, {"frontend", "www"}, {"name", name}, {"pem", pem}};
  };
  auto map = [](std::string host, std::string value) {
    return json{{"cmd", "map.set"}, {"frontend", "www"}, {"host", host}, {"value", value}};
  };
  journal.append(cert("a", "A1"));
  journal.append(map("x.example.com", "1"));
  journal.append(cert("b", "B1"));
  journal.append(cert("a", "A2"));
  journal.append(map("x.example.com", "2"));
  json routed = map("x.example.com", "3");
  routed["route"] = 4;  // another route's map: another key
  journal.append(routed);
  REQUIRE(journal.size() == 4);
  CHECK(journal.entries()[0] == cert("b", "B1"));
  CHECK(journal.entries()[1] == cert("a", "A2"));
  CHECK(journal.entries()[2] == map("x.example.com", "2"));
  journal.append({{"cmd", "cert.del"}, {"frontend", "www"}, {"name", "a"}});
  CHECK(cmds(journal) ==
        Names{"cert.set www b", "map.set www x.example.com", "map.set www x.example.com"});
  // map.del is kept: the host may come from the map file. A set before it stays too, or on a
  // replay over a map without the host, the del would find no entry.
  journal.append({{"cmd", "map.del"}, {"frontend", "www"}, {"host", "x.example.com"}});
  journal.append(map("x.example.com", "4"));
  CHECK(cmds(journal) == Names{"cert.set www b", "map.set www x.example.com",
                               "map.set www x.example.com", "map.del www x.example.com",
                               "map.set www x.example.com"});
}
