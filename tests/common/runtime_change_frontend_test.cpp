#include "common/runtime_change.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <sstream>

#include "tests/common/runtime_change_test_support.hpp"

using namespace molt::common;
using namespace molt::test::runtime;
using nlohmann::json;

TEST_CASE("cert.set adds a runtime certificate, inline or from a file", "[runtime_change]") {
  Config c = testConfig();
  std::vector<std::string> checked;
  ScopedCertificateValidator validator([&](const std::string& pem) {
    checked.push_back(pem);
    return "";
  });
  json inlined = {{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "shop"}, {"pem", "SHOP PEM"}};
  REQUIRE(applyRuntimeChange(c, inlined, kFiles) == "");
  json fromFile = {{"cmd", "cert.set"}, {"frontend", "www"}, {"path", "/certs/new.pem"}};
  REQUIRE(applyRuntimeChange(c, fromFile, kFiles) == "");
  // The journal keeps a self-contained form: the file's text, named by its path.
  CHECK(fromFile == json{{"cmd", "cert.set"},
                         {"frontend", "www"},
                         {"name", "/certs/new.pem"},
                         {"pem", "NEW PEM"}});
  CHECK(checked == std::vector<std::string>{"SHOP PEM", "NEW PEM"});
  const auto& certs = c.frontends[0].runtimeCertificates;
  REQUIRE(certs.size() == 2);
  CHECK(certs[0].name == "shop");
  CHECK(certs[0].pem == "SHOP PEM");
  CHECK(certs[1].name == "/certs/new.pem");

  // The same name replaces, in place.
  REQUIRE(
      apply(c,
            {{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "shop"}, {"pem", "SHOP PEM 2"}}) ==
      "");
  REQUIRE(certs.size() == 2);
  CHECK(certs[0].pem == "SHOP PEM 2");
}

TEST_CASE("cert.set is refused with the field at fault", "[runtime_change]") {
  Config c = testConfig();
  ScopedCertificateValidator validator([](const std::string& pem) -> std::string {
    return pem == "BAD" ? "no PEM certificate" : "";
  });
  std::string before = snapshot(c);
  auto set = [&](json fields) {
    json change = {{"cmd", "cert.set"}, {"frontend", "www"}};
    change.update(fields);
    return apply(c, change);
  };
  CHECK(set({{"name", "x"}, {"pem", "BAD"}}) == "pem: no PEM certificate");
  CHECK(set({{"path", "/certs/none.pem"}}) ==
        "path: /certs/none.pem: cannot read: No such file or directory");
  CHECK(set({{"path", "certs/new.pem"}}) == "path: expected an absolute path (starting with '/')");
  CHECK(set({{"name", "x"}, {"pem", "P"}, {"path", "/certs/new.pem"}}) ==
        "pem: give either pem or path, not both");
  CHECK(set({{"name", "x"}}) == "pem: missing (cert.set needs pem or path)");
  CHECK(set({{"pem", "P"}}) == "name: missing (cert.set with pem needs it)");
  CHECK(set({{"name", ""}, {"pem", "P"}}) == "name: must not be empty");
  CHECK(set({{"name", "x"}, {"pem", ""}}) == "pem: must not be empty");
  CHECK(apply(c, {{"cmd", "cert.set"}, {"frontend", "plain"}, {"name", "x"}, {"pem", "P"}}) ==
        "frontend: plain has no TLS bind");
  CHECK(apply(c, {{"cmd", "cert.set"}, {"frontend", "ww"}, {"name", "x"}, {"pem", "P"}}) ==
        "frontend: no frontend named 'ww' (did you mean 'www'?)");
  CHECK(snapshot(c) == before);
}

TEST_CASE("cert.del removes a runtime certificate but not one of the file's", "[runtime_change]") {
  Config c = testConfig();
  REQUIRE(apply(c, {{"cmd", "cert.set"}, {"frontend", "www"}, {"name", "shop"}, {"pem", "P"}}) ==
          "");
  std::string withShop = snapshot(c);
  CHECK(apply(c, {{"cmd", "cert.del"}, {"frontend", "www"}, {"name", "/certs/site.pem"}}) ==
        "name: /certs/site.pem comes from the config file (frontends[0].certificates[0]): edit "
        "the file and reload");
  CHECK(apply(c, {{"cmd", "cert.del"}, {"frontend", "www"}, {"name", "shpo"}}) ==
        "name: www has no runtime certificate named 'shpo' (did you mean 'shop'?)");
  CHECK(snapshot(c) == withShop);
  REQUIRE(apply(c, {{"cmd", "cert.del"}, {"frontend", "www"}, {"name", "shop"}}) == "");
  CHECK(c.frontends[0].runtimeCertificates.empty());
}

TEST_CASE("map.set adds or replaces a host-map entry as a map file line would",
          "[runtime_change]") {
  Config c = testConfig();
  json change = {
      {"cmd", "map.set"}, {"frontend", "www"}, {"host", "New.Example.COM"}, {"value", "2"}};
  REQUIRE(applyRuntimeChange(c, change, kFiles) == "");
  CHECK(change["host"] == "new.example.com");
  REQUIRE(apply(c, {{"cmd", "map.set"},
                    {"frontend", "www"},
                    {"host", "one.example.com"},
                    {"value", "app"},
                    {"route", 2}}) == "");
  const auto& entries = c.frontends[0].routes[2].mapEntries;
  using Entries = std::vector<std::pair<std::string, std::string>>;
  CHECK(entries ==
        Entries{{"one.example.com", "app"}, {"two.example.com", "2"}, {"new.example.com", "2"}});
  // A number is the value's text (molt ctl sends "1" as a number).
  json numeric = {
      {"cmd", "map.set"}, {"frontend", "www"}, {"host", "*.wild.example.com"}, {"value", 1}};
  REQUIRE(applyRuntimeChange(c, numeric, kFiles) == "");
  CHECK(numeric["value"] == "1");
  CHECK(entries.back() == std::pair<std::string, std::string>{"*.wild.example.com", "1"});
}

TEST_CASE("map.set and map.del are refused with the field at fault", "[runtime_change]") {
  Config c = testConfig();
  std::string before = snapshot(c);
  auto set = [&](json fields) {
    json change = {
        {"cmd", "map.set"}, {"frontend", "www"}, {"host", "x.example.com"}, {"value", "1"}};
    change.update(fields);
    return apply(c, change);
  };
  CHECK(set({{"value", "x"}}) == "value: no backend named 'bk_x' (did you mean 'bk_1'?)");
  CHECK(set({{"value", "a b"}}) ==
        "value: must be one word without spaces or '#', as in a map file");
  CHECK(set({{"host", "bad host"}}) ==
        "host: bad host 'bad host': expected a host name or \"*.domain\"");
  CHECK(set({{"route", 1}}) == "route: frontends[0].routes[1] is not a host_map route");
  CHECK(set({{"route", 3}}) == "route: www has no frontends[0].routes[3] (it has 3 routes)");
  CHECK(set({{"route", "2"}}) == "route: expected an integer");
  CHECK(set({{"route", -1}}) == "route: must be at least 0");
  CHECK(set({{"value", -1}}) == "value: expected a string");
  CHECK(set({{"frontend", "plain"}}) == "frontend: plain has no host_map route");
  CHECK(apply(c, {{"cmd", "map.del"}, {"frontend", "www"}, {"host", "zzz.example.com"}}) ==
        "host: no entry for 'zzz.example.com' in the host map /maps/hosts.map");
  CHECK(snapshot(c) == before);
  REQUIRE(apply(c, {{"cmd", "map.del"}, {"frontend", "www"}, {"host", "TWO.example.com"}}) == "");
  CHECK(c.frontends[0].routes[2].mapEntries.size() == 1);
}
