#include "master/upgrade.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "common/log.hpp"
#include "master/inventory_check.hpp"
#include "master/takeover_guard.hpp"

extern char** environ;

namespace molt::master {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR2};
constexpr uint64_t kCheckTimeoutMs = 10'000;

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
  while ((n = pread(fd, chunk, sizeof chunk, static_cast<off_t>(text.size()))) > 0)
    text.append(chunk, static_cast<size_t>(n));
  return text;
}

// A memfd holding `text`, sealed against writes (the check reads it as it was written).
common::UniqueFd sealedMemfd(const char* name, const std::string& text) {
  common::UniqueFd fd(memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd || write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return common::UniqueFd();
  fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK);
  return fd;
}

}  // namespace

Upgrader::Upgrader(std::string binaryPath, std::vector<std::string> argv, UpgradeParts parts)
    : binaryPath_(std::move(binaryPath)), argv_(std::move(argv)), parts_(parts) {
  rememberBinary();
}

Upgrader::~Upgrader() {
  cancelCheck();
}

void Upgrader::rememberBinary() {
  if (binaryPath_.empty() || stat(binaryPath_.c_str(), &binary_) < 0) binary_ = {};
}

bool Upgrader::binaryChanged() const {
  struct stat now {};
  if (binaryPath_.empty() || stat(binaryPath_.c_str(), &now) < 0) return false;
  return !sameFile(now, binary_);
}

// The binary on disk is opened once: the file checked is the file exec'd, whatever replaces the
// path meanwhile. It runs `--upgrade-check` with the inventory it would get on fd 3 and its
// stderr in a memfd (read once it exited: no pipe to drain alongside).
void Upgrader::check(std::function<void(const std::string& error)> done) {
  cancelCheck();
  candidate_.reset(::open(binaryPath_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!candidate_) return done("open(" + binaryPath_ + "): " + std::strerror(errno));
  std::vector<int> ignored;
  common::UniqueFd inventoryText =
      sealedMemfd("molt-inventory-check", inventory(ignored, {}).dump());
  checkOutput_.reset(memfd_create("molt-upgrade-check", MFD_CLOEXEC));
  if (!inventoryText || !checkOutput_) return done(std::string("memfd: ") + std::strerror(errno));
  // The candidate as the child's fd 4: inherited (a script's interpreter must open it again).
  std::string file = "/proc/self/fd/4";
  std::string config = parts_.builder.configPath();
  char arg0[] = "molt", arg1[] = "--upgrade-check", arg2[] = "-f";
  char* args[] = {arg0, arg1, arg2, config.data(), nullptr};
  uv_stdio_container_t stdio[5];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_IGNORE;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = checkOutput_.get();
  stdio[3].flags = UV_INHERIT_FD;
  stdio[3].data.fd = inventoryText.get();
  stdio[4].flags = UV_INHERIT_FD;
  stdio[4].data.fd = candidate_.get();
  uv_process_options_t options{};
  options.file = file.c_str();
  options.args = args;
  options.stdio = stdio;
  options.stdio_count = 5;
  options.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
    if (auto* self = static_cast<Upgrader*>(p->data)) self->checkExited(status, signal);
  };
  checkProcess_ = common::UvHandle<uv_process_t>();
  checkProcess_->data = this;
  std::fflush(nullptr);
  if (int rc = uv_spawn(parts_.loop, checkProcess_.get(), &options); rc < 0) {
    checkProcess_.close();
    return done(std::string("spawn ") + binaryPath_ + ": " + uv_strerror(rc));
  }
  checkDone_ = std::move(done);
  checkTimer_ = common::UvHandle<uv_timer_t>();
  uv_timer_init(parts_.loop, checkTimer_.get());
  checkTimer_->data = this;
  uv_timer_start(
      checkTimer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<Upgrader*>(t->data);
        if (self && self->checkProcess_.initialized())
          uv_process_kill(self->checkProcess_.get(), SIGKILL);
      },
      kCheckTimeoutMs, 0);
}

void Upgrader::checkExited(int64_t status, int signal) {
  checkTimer_.close();
  checkProcess_.close();
  std::string output = checkOutput_ ? readAll(checkOutput_.get()) : "";
  checkOutput_.reset();
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (output.size() > 2000) output = output.substr(0, 2000) + "...";
  std::string error;
  if (signal != 0)
    error = binaryPath_ + " --upgrade-check: killed by signal " + std::to_string(signal) +
            (signal == SIGKILL ? " (no answer within 10 s)" : "");
  else if (status != 0)
    error = binaryPath_ + " --upgrade-check: exit " + std::to_string(status) +
            (output.empty() ? "" : ": " + output);
  if (!error.empty()) {
    candidate_.reset();
    rememberBinary();  // the same file is not tried again on every reload
  }
  auto done = std::move(checkDone_);
  checkDone_ = nullptr;
  if (done) done(error);
}

void Upgrader::cancelCheck() {
  if (checkProcess_.initialized()) uv_process_kill(checkProcess_.get(), SIGKILL);
  checkProcess_.close();
  checkTimer_.close();
  checkOutput_.reset();
  checkDone_ = nullptr;
}

std::string Upgrader::upgrade(const char* why, const std::vector<ApiReply>& waiters) {
  if (!candidate_) return "no checked binary to run";
  common::log::info("{}: {} changed on disk; re-executing the master (binary upgrade)", why,
                    binaryPath_);
  parts_.notifier.reloading("binary upgrade");
  std::vector<int> fds;
  std::string text = inventory(fds, waiters).dump();
  common::UniqueFd memfd(memfd_create("molt-inventory", 0));
  // The running binary, for the new image to go back to if it cannot take over.
  common::UniqueFd self(::open("/proc/self/exe", O_RDONLY));
  if (!memfd || !self ||
      write(memfd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return std::string("inventory: ") + std::strerror(errno);
  for (int fd : fds) setCloexec(fd, false);
  setenv(kInventoryEnv, std::to_string(memfd.get()).c_str(), 1);
  setenv(kFallbackEnv, std::to_string(self.get()).c_str(), 1);
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
  syscall(SYS_execveat, candidate_.get(), "", argv.data(), environ, AT_EMPTY_PATH);
  int err = errno;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  unsetenv(kInventoryEnv);
  unsetenv(kFallbackEnv);
  for (int fd : fds) setCloexec(fd, true);
  candidate_.reset();
  rememberBinary();
  return std::string("execveat(") + binaryPath_ + "): " + std::strerror(err);
}

nlohmann::json Upgrader::inventory(std::vector<int>& fds,
                                   const std::vector<ApiReply>& waiters) const {
  nlohmann::json doc = {{"version", kInventoryVersion},
                        {"config_path", parts_.builder.configPath()},
                        {"next_generation", parts_.builder.nextId()},
                        {"last_errors", parts_.reloader.lastErrors()},
                        {"journal", parts_.changes.journal().toText()},
                        {"state_file", parts_.changes.stateFile()},
                        {"servers_down", nlohmann::json::array()}};
  for (const auto& [backend, server] : parts_.checker.down())
    doc["servers_down"].push_back(nlohmann::json::array({backend, server}));
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
  doc["metrics"] = parts_.metrics.inventory(fds);
  // Connection hand-overs under way: the next image relays their answers.
  if (nlohmann::json moving = parts_.supervisor.migrator().inventory(); !moving.empty())
    doc["migrations"] = std::move(moving);
  // Clients waiting for this reload: the new image answers them when its reload ends.
  nlohmann::json clients = nlohmann::json::array();
  for (const auto& waiter : waiters)
    if (nlohmann::json client = waiter.handOver(fds); !client.is_null()) clients.push_back(client);
  doc["api_clients"] = clients;
  return doc;
}

bool Upgrader::restore() {
  const char* env = std::getenv(kInventoryEnv);
  if (!env) return false;
  int inventoryFd = std::atoi(env);
  auto doc = nlohmann::json::parse(readAll(inventoryFd), nullptr, false);
  std::vector<int> fds = inventoryDescriptors(doc);
  fds.push_back(inventoryFd);
  // From here until the takeover is complete, a failure of this image re-execs the previous
  // binary with the same inventory (when the previous image offered one).
  TakeoverGuard guard(fds, argv_);
  if (std::string error = validateInventory(doc); !error.empty()) {
    common::log::error("upgrade: this binary cannot take over: {}", error);
    guard.fallBack("this binary cannot take over: " + error);
    std::abort();  // no previous binary to go back to: loud and immediate, never a guess
  }
  unsetenv(kInventoryEnv);
  common::UniqueFd memfd(inventoryFd);
  // Fault injection for the tests of the fallback: this image dies mid-takeover.
  if (const char* fault = std::getenv("MOLT_UPGRADE_FAULT");
      fault && guard.armed() && std::string_view(fault) == "crash-in-restore")
    std::abort();
  adopt(doc);
  guard.disarm();
  if (const char* failed = std::getenv(kUpgradeFailedEnv)) {
    failure_ =
        std::string("binary upgrade failed: ") + failed + "; the previous binary took over again";
    common::log::error("upgrade: {}", failure_);
    unsetenv(kUpgradeFailedEnv);
  }
  return true;
}

// Takes every part over from a validated inventory.
void Upgrader::adopt(const nlohmann::json& doc) {
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
  for (const auto& client : doc.value("api_clients", nlohmann::json::array())) {
    common::UniqueFd fd(client.at("fd").get<int>());
    setCloexec(fd.get(), true);
    if (ApiReply reply =
            parts_.api.adoptClient(std::move(fd), client.at("seq").get<std::uint64_t>()))
      handedWaiters_.push_back(std::move(reply));
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
  if (Generation* serving = parts_.supervisor.current())
    parts_.tlsZones.configureFleet(serving->config());
  if (auto metrics = doc.find("metrics"); metrics != doc.end()) parts_.metrics.restore(*metrics);
  parts_.supervisor.migrator().restore(doc.value("migrations", nlohmann::json::array()));
  parts_.supervisor.respawnMissing();
  restoreHealth(doc);
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
