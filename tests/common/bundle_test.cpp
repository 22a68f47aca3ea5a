#include "common/bundle.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>

using namespace molt::common;

TEST_CASE("a handover bundle round-trips the config and its side files", "[common][bundle]") {
  Bundle bundle;
  bundle.configPath = "/etc/molt/molt.json";
  bundle.configText = "{\"global\": {}}";
  bundle.files["/etc/molt/maps/hosts.map"] = "a.example.com 1\n";
  bundle.files["/etc/molt/certs/a.pem"] = "PEM";
  bundle.journal = "{\"cmd\":\"server.del\",\"backend\":\"b\",\"server\":\"s\"}\n";
  std::string error;
  UniqueFd fd = writeBundle(bundle, error);
  REQUIRE(fd);
  auto back = readBundle(fd.get(), error);
  REQUIRE(back);
  REQUIRE(back->configPath == bundle.configPath);
  REQUIRE(back->configText == bundle.configText);
  REQUIRE(back->files == bundle.files);
  REQUIRE(back->journal == bundle.journal);

  FileSource source = back->fileSource();
  REQUIRE(source.read("/etc/molt/maps/hosts.map", error) ==
          std::optional<std::string>("a.example.com 1\n"));
  REQUIRE_FALSE(source.read("/etc/passwd", error));
  auto listing = source.list("/etc/molt/certs", error);
  REQUIRE(listing);
  REQUIRE(*listing == std::vector<std::string>{"a.pem"});
}

TEST_CASE("a bundle memfd is sealed against writes", "[common][bundle]") {
  Bundle bundle;
  bundle.configPath = "x";
  std::string error;
  UniqueFd fd = writeBundle(bundle, error);
  REQUIRE(fd);
  REQUIRE((fcntl(fd.get(), F_GET_SEALS) & F_SEAL_WRITE));
  REQUIRE(write(fd.get(), "x", 1) < 0);
}

TEST_CASE("a file that is not a bundle is refused", "[common][bundle]") {
  UniqueFd fd(memfd_create("junk", MFD_CLOEXEC));
  REQUIRE(write(fd.get(), "not a bundle at all", 19) == 19);
  std::string error;
  REQUIRE_FALSE(readBundle(fd.get(), error));
  REQUIRE(error == "bad bundle magic");
}

namespace {

// A bundle image as the given version wrote it: the config, then the records given.
UniqueFd bundleImage(std::uint32_t version,
                     const std::vector<std::pair<std::string, std::string>>& records) {
  std::string image = "MOLTBNDL";
  auto put = [&](auto value) { image.append(reinterpret_cast<const char*>(&value), sizeof value); };
  put(version);
  put(static_cast<std::uint32_t>(records.size()));
  for (const auto& [name, data] : records) {
    put(static_cast<std::uint32_t>(name.size()));
    put(static_cast<std::uint64_t>(data.size()));
    image += name + data;
  }
  UniqueFd fd(memfd_create("bundle", MFD_CLOEXEC));
  REQUIRE(write(fd.get(), image.data(), image.size()) == static_cast<ssize_t>(image.size()));
  return fd;
}

}  // namespace

TEST_CASE("a version 1 bundle, from the binary before an upgrade, reads with no journal",
          "[common][bundle]") {
  UniqueFd fd = bundleImage(1, {{"/etc/molt.json", "{}"}, {"/etc/hosts.map", "a 1\n"}});
  std::string error;
  auto back = readBundle(fd.get(), error);
  REQUIRE(back);
  CHECK(back->configText == "{}");
  CHECK(back->journal.empty());
  CHECK(back->files.at("/etc/hosts.map") == "a 1\n");
}

TEST_CASE("a bundle of an unknown version is refused", "[common][bundle]") {
  UniqueFd fd = bundleImage(3, {{"/etc/molt.json", "{}"}, {"journal", ""}});
  std::string error;
  REQUIRE_FALSE(readBundle(fd.get(), error));
  CHECK(error == "unsupported bundle version 3");
  UniqueFd truncated = bundleImage(2, {{"/etc/molt.json", "{}"}});
  REQUIRE_FALSE(readBundle(truncated.get(), error));
  CHECK(error == "truncated bundle");
}
