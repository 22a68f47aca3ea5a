#include "master/upgrade.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "common/log.hpp"

namespace molt::master {
namespace {

constexpr int kInventoryVersion = 1;
constexpr const char* kInventoryEnv = "MOLT_INVENTORY_FD";
constexpr int kSignals[] = {SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR2};

bool sameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

void setCloexec(int fd, bool on) {
  fcntl(fd, F_SETFD, on ? FD_CLOEXEC : 0);
}

std::string readAll(int fd) {
  std::string text;
  char chunk[65536];
  ssize_t n;
  lseek(fd, 0, SEEK_SET);
  while ((n = read(fd, chunk, sizeof chunk)) > 0) text.append(chunk, static_cast<size_t>(n));
  return text;
}

}  // namespace

Upgrader::Upgrader(std::string binaryPath, std::vector<std::string> argv, UpgradeParts parts)
    : binaryPath_(std::move(binaryPath)), argv_(std::move(argv)), parts_(parts) {
  rememberBinary();
}

void Upgrader::rememberBinary() {
  if (binaryPath_.empty() || stat(binaryPath_.c_str(), &binary_) < 0) binary_ = {};
}

bool Upgrader::binaryChanged() const {
  struct stat now {};
  if (binaryPath_.empty() || stat(binaryPath_.c_str(), &now) < 0) return false;
  return !sameFile(now, binary_);
}

void Upgrader::upgrade(const char* why) {
  common::log::info("{}: {} changed on disk; re-executing the master (binary upgrade)", why,
                    binaryPath_);
  parts_.notifier.reloading("binary upgrade");
  std::vector<int> fds;
  std::string text = inventory(fds).dump();
  common::UniqueFd memfd(memfd_create("molt-inventory", 0));
  if (!memfd || write(memfd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    common::log::error("upgrade: inventory memfd: {}; reloading without upgrade",
                       std::strerror(errno));
    return;
  }
  for (int fd : fds) setCloexec(fd, false);
  setenv(kInventoryEnv, std::to_string(memfd.get()).c_str(), 1);
  // Blocked across exec: the new image unblocks them once its handlers are installed.
  sigset_t block, old;
  sigemptyset(&block);
  for (int s : kSignals) sigaddset(&block, s);
  sigprocmask(SIG_BLOCK, &block, &old);
  std::vector<char*> argv;
  for (auto& a : argv_) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The zygote runs the old binary: stopped and reaped here (the new image could not reap it),
  // the new image starts its own on its first spawn.
  parts_.supervisor.stopZygote();
  std::fflush(nullptr);
  execv(binaryPath_.c_str(), argv.data());
  int err = errno;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  unsetenv(kInventoryEnv);
  for (int fd : fds) setCloexec(fd, true);
  common::log::error("upgrade: execv({}): {}; the running binary goes on", binaryPath_,
                     std::strerror(err));
  rememberBinary();  // don't retry the same file on every reload
}

nlohmann::json Upgrader::inventory(std::vector<int>& fds) const {
  nlohmann::json doc = {{"version", kInventoryVersion},
                        {"config_path", parts_.builder.configPath()},
                        {"next_generation", parts_.builder.nextId()},
                        {"last_errors", parts_.reloader.lastErrors()},
                        {"journal", parts_.changes.journal().toText()},
                        {"state_file", parts_.changes.stateFile()},
                        {"servers_down", parts_.checker.down()}};
  std::set<const Listener*> seen;
  nlohmann::json listeners = nlohmann::json::array();
  auto addListener = [&](const Listener& l) {
    if (!seen.insert(&l).second) return;
    listeners.push_back(
        {{"key", l.key}, {"fd", l.fd.get()}, {"backlog", l.backlog}, {"bound", l.bound.text()}});
    fds.push_back(l.fd.get());
  };
  nlohmann::json generations = nlohmann::json::array();
  for (const auto& g : parts_.supervisor.generations()) {
    if (g->phase() == GenerationPhase::Gone) continue;
    for (const auto& l : g->listeners()) addListener(*l.listener);
    generations.push_back(g->inventory(fds));
  }
  for (const auto& l : parts_.listeners.unclaimed()) addListener(*l);
  doc["listeners"] = listeners;
  doc["tls_zones"] = parts_.tlsZones.inventory(fds);
  if (parts_.api.listening()) {
    doc["api"] = {
        {"fd", parts_.api.fd()}, {"path", parts_.api.path()}, {"uids", parts_.api.allowedUids()}};
    fds.push_back(parts_.api.fd());
  }
  doc["generations"] = generations;
  return doc;
}

bool Upgrader::restore() {
  const char* env = std::getenv(kInventoryEnv);
  if (!env) return false;
  common::UniqueFd memfd(std::atoi(env));
  unsetenv(kInventoryEnv);
  auto doc = nlohmann::json::parse(readAll(memfd.get()), nullptr, false);
  if (!doc.is_object() || doc.value("version", 0) != kInventoryVersion) {
    // A layout this image does not know: loud, immediate failure rather than guessing.
    common::log::error("upgrade: inventory version {} not understood; aborting",
                       doc.is_object() ? doc.value("version", 0) : -1);
    std::abort();
  }
  parts_.builder.setNextId(doc["next_generation"].get<unsigned>());
  if (auto api = doc.find("api"); api != doc.end()) {
    common::UniqueFd fd(api->at("fd").get<int>());
    setCloexec(fd.get(), true);
    // The reload that follows the upgrade sets the users of its config again.
    if (std::string error = parts_.api.adopt(std::move(fd), api->at("path").get<std::string>(),
                                             api->value("uids", std::vector<uid_t>{}));
        !error.empty())
      common::log::error("upgrade: api socket: {}", error);
  }
  parts_.reloader.setLastErrors(doc["last_errors"].get<std::vector<std::string>>());
  // The runtime changes, for the reload that follows and every later one.
  Journal journal;
  if (std::string error; !journal.fromText(doc.value("journal", ""), error))
    common::log::error("upgrade: journal: {}", error);
  parts_.changes.restore(std::move(journal), doc.value("state_file", ""));
  if (auto zones = doc.find("tls_zones"); zones != doc.end())
    if (std::string error = parts_.tlsZones.restore(*zones); !error.empty())
      common::log::error("upgrade: {}", error);
  restoreGenerations(doc, restoreListeners(doc));
  parts_.supervisor.respawnMissing();
  restoreHealth(doc);
  return true;
}

std::map<std::string, std::shared_ptr<Listener>> Upgrader::restoreListeners(
    const nlohmann::json& doc) {
  std::map<std::string, std::shared_ptr<Listener>> byKey;
  for (const auto& l : doc["listeners"]) {
    auto listener = std::make_shared<Listener>();
    listener->key = l["key"].get<std::string>();
    listener->backlog = l["backlog"].get<int>();
    listener->fd.reset(l["fd"].get<int>());
    setCloexec(listener->fd.get(), true);
    listener->bound.length = sizeof listener->bound.storage;
    getsockname(listener->fd.get(), reinterpret_cast<sockaddr*>(&listener->bound.storage),
                &listener->bound.length);
    parts_.listeners.restore(listener);
    byKey[listener->key] = listener;
  }
  return byKey;  // held while the generations that use them are restored
}

void Upgrader::restoreGenerations(const nlohmann::json& doc,
                                  const std::map<std::string, std::shared_ptr<Listener>>& byKey) {
  Generation::RestoreContext context{
      parts_.loop, [this](Generation& g) { return parts_.supervisor.handlersFor(g); },
      [&byKey](const std::string& key) {
        auto it = byKey.find(key);
        return it == byKey.end() ? nullptr : it->second;
      },
      [this](int fd) { return parts_.tlsZones.cacheByFd(fd); }, parts_.tlsZones.ticketKeys()};
  for (const auto& g : doc["generations"]) parts_.supervisor.adopt(Generation::restore(g, context));
}

// Health found by the previous image (from its own memory, not from a zone), so that the reload
// that follows keeps down servers down.
void Upgrader::restoreHealth(const nlohmann::json& doc) {
  if (Generation* serving = parts_.supervisor.current())
    parts_.checker.setTargets(HealthChecker::targetsOf(serving->config()));
  for (const auto& server : doc.value("servers_down", nlohmann::json::array()))
    parts_.checker.assume(server.at(0).get<std::string>(), server.at(1).get<std::string>(), false);
}

}  // namespace molt::master
