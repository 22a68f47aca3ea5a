#include "common/bundle.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace molt::common {
namespace {

constexpr char kMagic[8] = {'M', 'O', 'L', 'T', 'B', 'N', 'D', 'L'};
constexpr std::uint32_t kVersion = 2;
constexpr std::uint32_t kOldestVersion = 1;  // without the journal record

template <class T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

template <class T>
bool take(std::string_view& in, T& value) {
  if (in.size() < sizeof value) return false;
  std::memcpy(&value, in.data(), sizeof value);
  in.remove_prefix(sizeof value);
  return true;
}

void putRecord(std::string& out, const std::string& name, const std::string& data) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(name.size()));
  put<std::uint64_t>(out, data.size());
  out += name;
  out += data;
}

bool takeRecord(std::string_view& in, std::string& name, std::string& data) {
  std::uint32_t nameLength;
  std::uint64_t dataLength;
  if (!take(in, nameLength) || !take(in, dataLength)) return false;
  if (in.size() < nameLength || in.size() - nameLength < dataLength) return false;
  name.assign(in.substr(0, nameLength));
  data.assign(in.substr(nameLength, dataLength));
  in.remove_prefix(nameLength + dataLength);
  return true;
}

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

FileSource Bundle::fileSource() const {
  FileSource source;
  source.read = [this](const std::string& path, std::string& error) -> std::optional<std::string> {
    auto it = files.find(path);
    if (it == files.end()) {
      error = "not in the handover bundle";
      return std::nullopt;
    }
    return it->second;
  };
  source.list = [this](const std::string& path,
                       std::string& error) -> std::optional<std::vector<std::string>> {
    // A directory is "listed" in the bundle as the set of files read beneath it.
    std::string prefix = path.empty() || path.back() == '/' ? path : path + '/';
    std::set<std::string> names;
    for (const auto& [name, data] : files)
      if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
          name.find('/', prefix.size()) == std::string::npos)
        names.insert(name.substr(prefix.size()));
    if (names.empty()) {
      error = "not a directory in the handover bundle";
      return std::nullopt;
    }
    return std::vector<std::string>(names.begin(), names.end());
  };
  return source;
}

UniqueFd writeBundle(const Bundle& bundle, std::string& error) {
  std::string image(kMagic, sizeof kMagic);
  put<std::uint32_t>(image, kVersion);
  put<std::uint32_t>(image, static_cast<std::uint32_t>(2 + bundle.files.size()));
  putRecord(image, bundle.configPath, bundle.configText);
  putRecord(image, "journal", bundle.journal);
  for (const auto& [name, data] : bundle.files) putRecord(image, name, data);

  UniqueFd fd(memfd_create("molt-bundle", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) {
    error = std::string("memfd_create: ") + std::strerror(errno);
    return {};
  }
  if (!writeAll(fd.get(), image)) {
    error = std::string("write(bundle memfd): ") + std::strerror(errno);
    return {};
  }
  // Sealed: a worker can trust that nobody rewrites its config under it.
  fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return fd;
}

std::optional<Bundle> readBundle(int fd, std::string& error) {
  struct stat st {};
  if (fstat(fd, &st) < 0) {
    error = std::string("fstat(bundle): ") + std::strerror(errno);
    return std::nullopt;
  }
  std::string image(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < image.size()) {
    ssize_t n = pread(fd, image.data() + done, image.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = std::string("pread(bundle): ") + (n < 0 ? std::strerror(errno) : "short file");
      return std::nullopt;
    }
    done += static_cast<size_t>(n);
  }
  std::string_view in = image;
  std::uint32_t version = 0, count = 0;
  if (in.size() < sizeof kMagic || std::memcmp(in.data(), kMagic, sizeof kMagic) != 0) {
    error = "bad bundle magic";
    return std::nullopt;
  }
  in.remove_prefix(sizeof kMagic);
  if (!take(in, version) || version < kOldestVersion || version > kVersion) {
    error = "unsupported bundle version " + std::to_string(version);
    return std::nullopt;
  }
  std::uint32_t firstFile = version >= 2 ? 2 : 1;
  if (!take(in, count) || count < firstFile) {
    error = "truncated bundle";
    return std::nullopt;
  }
  Bundle bundle;
  std::string name, data;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (!takeRecord(in, name, data)) {
      error = "truncated bundle";
      return std::nullopt;
    }
    if (i == 0) {
      bundle.configPath = name;
      bundle.configText = std::move(data);
    } else if (i < firstFile) {
      bundle.journal = std::move(data);
    } else {
      bundle.files.emplace(name, std::move(data));
    }
  }
  return bundle;
}

}  // namespace molt::common
