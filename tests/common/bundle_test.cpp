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
  std::string error;
  UniqueFd fd = writeBundle(bundle, error);
  REQUIRE(fd);
  auto back = readBundle(fd.get(), error);
  REQUIRE(back);
  REQUIRE(back->configPath == bundle.configPath);
  REQUIRE(back->configText == bundle.configText);
  REQUIRE(back->files == bundle.files);

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
