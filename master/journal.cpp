#include "master/journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/journal_text.hpp"
#include "common/runtime_change.hpp"
#include "common/unique_fd.hpp"

namespace molt::master {
namespace {

std::string stringField(const nlohmann::json& change, const char* key) {
  auto it = change.find(key);
  return it != change.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string cmdOf(const nlohmann::json& change) {
  return stringField(change, "cmd");
}

// The same field in both: absent from both, or equal.
bool sameField(const nlohmann::json& a, const nlohmann::json& b, const char* key) {
  auto x = a.find(key);
  auto y = b.find(key);
  if (x == a.end() || y == b.end()) return x == a.end() && y == b.end();
  return *x == *y;
}

bool sameKey(const nlohmann::json& a, const nlohmann::json& b,
             std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    if (!sameField(a, b, key)) return false;
  }
  return true;
}

bool sameMapKey(const nlohmann::json& a, const nlohmann::json& b) {
  return sameKey(a, b, {"frontend", "route", "host"});
}

// The name of the backend an entry adds or removes, or "".
std::string backendDefined(const nlohmann::json& change) {
  std::string cmd = cmdOf(change);
  if (cmd == "backend.del") return stringField(change, "backend");
  auto it = change.find("backend");
  if (cmd != "backend.add" || it == change.end() || !it->is_object()) return "";
  return stringField(*it, "name");
}

// A server.add of the one server (not a template) `server` to `backend`.
bool addsServer(const nlohmann::json& change, const std::string& backend,
                const std::string& server) {
  auto object = change.find("server");
  return cmdOf(change) == "server.add" && stringField(change, "backend") == backend &&
         object != change.end() && object->is_object() && !object->contains("template") &&
         stringField(*object, "name") == server;
}

std::string systemError(const char* call, const std::string& path) {
  return std::string(call) + "(" + path + "): " + std::strerror(errno);
}

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string directoryOf(const std::string& path) {
  std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string JournalConflict::str() const {
  return "runtime change " + std::to_string(index + 1) + " (" + change + ") dropped: " + error;
}

template <class Predicate>
std::size_t Journal::dropWhere(Predicate drop) {
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

void Journal::append(nlohmann::json change) {
  std::string cmd = cmdOf(change);
  if (cmd == "cert.set" || cmd == "cert.del") {
    std::size_t dropped = dropWhere([&](std::size_t, const nlohmann::json& e) {
      return cmdOf(e) == "cert.set" && sameKey(e, change, {"frontend", "name"});
    });
    // A runtime certificate exists only through the journal's cert.set: deleting it leaves none.
    if (cmd == "cert.del" && dropped > 0) return;
  } else if (cmd == "map.set") {
    // Only since the last map.del of the host: without the set before it, that del could meet
    // no entry on replay (when the map file lacks the host) and be reported as a conflict.
    std::size_t since = 0;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (cmdOf(entries_[i]) == "map.del" && sameMapKey(entries_[i], change)) since = i + 1;
    }
    dropWhere([&](std::size_t i, const nlohmann::json& e) {
      return i >= since && cmdOf(e) == "map.set" && sameMapKey(e, change);
    });
  } else if (cmd == "server.del" && cancelServerAdd(change)) {
    return;
  } else if (cmd == "backend.del" && cancelBackendAdd(change)) {
    return;
  }
  entries_.push_back(std::move(change));
}

bool Journal::cancelServerAdd(const nlohmann::json& del) {
  std::string backend = stringField(del, "backend");
  std::string server = stringField(del, "server");
  std::size_t added = entries_.size();
  for (std::size_t i = entries_.size(); i-- > 0;) {
    if (addsServer(entries_[i], backend, server)) {
      added = i;
      break;
    }
  }
  if (added == entries_.size()) return false;
  for (std::size_t i = added + 1; i < entries_.size(); ++i) {
    if (backendDefined(entries_[i]) == backend) return false;
  }
  dropWhere([&](std::size_t i, const nlohmann::json& e) {
    return i == added ||
           (i > added && cmdOf(e) == "server.set" && stringField(e, "backend") == backend &&
            stringField(e, "server") == server);
  });
  return true;
}

bool Journal::cancelBackendAdd(const nlohmann::json& del) {
  std::string backend = stringField(del, "backend");
  std::size_t added = entries_.size();
  for (std::size_t i = entries_.size(); i-- > 0 && added == entries_.size();) {
    if (cmdOf(entries_[i]) == "backend.add" && backendDefined(entries_[i]) == backend) added = i;
  }
  if (added == entries_.size()) return false;
  for (std::size_t i = added + 1; i < entries_.size(); ++i) {
    if (cmdOf(entries_[i]).rfind("map.", 0) == 0) return false;
  }
  dropWhere([&](std::size_t i, const nlohmann::json& e) {
    return i == added || (i > added && stringField(e, "backend") == backend);
  });
  return true;
}

std::vector<JournalConflict> Journal::replay(common::Config& config,
                                             const common::FileSource& files) {
  std::vector<JournalConflict> conflicts;
  std::vector<bool> failed(entries_.size());
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    std::string description = common::describeRuntimeChange(entries_[i]);
    std::string error = common::applyRuntimeChange(config, entries_[i], files);
    if (error.empty()) continue;
    failed[i] = true;
    conflicts.push_back({i, std::move(description), std::move(error)});
  }
  if (!conflicts.empty())
    dropWhere([&](std::size_t i, const nlohmann::json&) { return failed[i]; });
  return conflicts;
}

std::string Journal::toText() const {
  return common::formatJournalText(entries_);
}

bool Journal::fromText(std::string_view text, std::string& error) {
  auto changes = common::parseJournalText(text, error);
  if (!changes) return false;
  entries_ = std::move(*changes);
  return true;
}

bool Journal::saveStateFile(const std::string& path, std::string& error) const {
  std::string temp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(temp.c_str());  // a leftover of a crash; O_EXCL then makes sure of the mode
  common::UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) {
    error = systemError("open", temp);
    return false;
  }
  bool ok = true;
  if (::fchmod(fd.get(), 0600) != 0) {  // exactly 0600, whatever the umask
    error = systemError("fchmod", temp);
    ok = false;
  } else if (!writeAll(fd.get(), toText())) {
    error = systemError("write", temp);
    ok = false;
  } else if (::fsync(fd.get()) != 0) {
    error = systemError("fsync", temp);
    ok = false;
  } else if (::rename(temp.c_str(), path.c_str()) != 0) {
    error = systemError("rename", temp + " -> " + path);
    ok = false;
  }
  if (!ok) {
    ::unlink(temp.c_str());
    return false;
  }
  // The rename is durable only once the directory entry is on disk.
  std::string dir = directoryOf(path);
  common::UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirFd || ::fsync(dirFd.get()) != 0) {
    error = systemError(dirFd ? "fsync" : "open", dir);
    return false;
  }
  return true;
}

bool Journal::loadStateFile(const std::string& path, std::string& error) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd && errno == ENOENT) {
    entries_.clear();
    return true;
  }
  if (!fd) {
    error = systemError("open", path);
    return false;
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = systemError("read", path);
      return false;
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  if (fromText(text, error)) return true;
  error = path + ": " + error;
  return false;
}

}  // namespace molt::master
