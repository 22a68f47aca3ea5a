#include "tests/support/molt_fixture.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

namespace molt::test {

Origin::Origin(const std::string& name, std::uint16_t httpPort) {
  child_ = std::make_unique<Child>(
      std::vector<std::string>{originBinary(), "--http", "127.0.0.1:" + std::to_string(httpPort),
                               "--tcp-echo", "127.0.0.1:0", "--name", name});
  auto http = child_->waitForLine(R"(listening http 127\.0\.0\.1:(\d+))");
  auto echo = child_->waitForLine(R"(listening tcp-echo 127\.0\.0\.1:(\d+))");
  INFO(child_->output());
  REQUIRE(http);
  REQUIRE(echo);
  httpPort_ = static_cast<std::uint16_t>(std::stoi((*http)[1]));
  echoPort_ = static_cast<std::uint16_t>(std::stoi((*echo)[1]));
}

Molt::Molt(const std::string& configText, const std::vector<std::string>& env, bool waitServing,
           const std::vector<std::string>& launcher) {
  configPath_ = dir_.write("molt.json", configText);
  std::vector<std::string> argv = launcher;
  argv.insert(argv.end(), {moltBinary(), "-f", configPath_});
  child_ = std::make_unique<Child>(argv, env);
  if (!waitServing) return;
  auto serving = child_->waitForLine(R"(generation 1 serving)", 20s);
  INFO(child_->output());
  REQUIRE(serving);
}

void Molt::rewriteConfig(const std::string& configText) const {
  std::ofstream(configPath_, std::ios::trunc) << configText;
}

std::uint16_t Molt::port(const std::string& frontend, unsigned generation) {
  auto line = child_->waitForLine("generation " + std::to_string(generation) + ": frontend " +
                                  frontend + R"( listening on [^ ]*:(\d+))");
  INFO(child_->output());
  REQUIRE(line);
  return static_cast<std::uint16_t>(std::stoi((*line)[1]));
}

std::vector<pid_t> Molt::workerPids(unsigned generation) {
  std::regex re("generation " + std::to_string(generation) +
                R"(: worker slot (\d+) started, pid (\d+))");
  std::map<int, pid_t> bySlot;
  for (const auto& line : child_->lines()) {
    std::smatch m;
    if (std::regex_search(line, m, re)) bySlot[std::stoi(m[1])] = std::stoi(m[2]);
  }
  std::vector<pid_t> pids;
  for (const auto& [slot, pid] : bySlot) pids.push_back(pid);
  return pids;
}

CopiedMolt::CopiedMolt(const std::string& configText, const std::vector<std::string>& env) {
  install(binary);
  master = std::make_unique<Child>(
      std::vector<std::string>{binary, "-f", dir.write("molt.json", configText)}, env);
  REQUIRE_LINE(*master, "generation 1 serving", 20s);
}

void CopiedMolt::install(const std::string& path) {
  std::filesystem::copy_file(moltBinary(), path);
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
}

void CopiedMolt::upgradeTo(unsigned next) {
  install(binary + ".new");
  std::filesystem::rename(binary + ".new", binary);
  size_t from = master->lines().size();
  master->signal(SIGUSR2);
  REQUIRE_LINE(*master, "changed on disk; re-executing the master", 10s, from);
  REQUIRE_LINE(*master, "generation " + std::to_string(next) + " serving", 20s, from);
}

std::uint16_t CopiedMolt::port(const std::string& frontend) {
  auto line = master->waitForLine("frontend " + frontend + R"( listening on [^ ]*:(\d+))");
  REQUIRE(line);
  return static_cast<std::uint16_t>(std::stoi((*line)[1]));
}

}  // namespace molt::test
