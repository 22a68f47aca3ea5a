#include "master/journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/journal_text.hpp"
#include "common/runtime_change.hpp"
#include "common/unique_fd.hpp"
#include "master/change_kinds.hpp"

namespace molt::master {
namespace {

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

void Journal::append(nlohmann::json change) {
  auto cmd = change.find("cmd");
  const ChangeKind* kind = cmd != change.end() && cmd->is_string()
                               ? findChangeKind(cmd->get_ref<const std::string&>())
                               : nullptr;
  if (kind && kind->fold && kind->fold(*this, change)) return;
  entries_.push_back(std::move(change));
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
