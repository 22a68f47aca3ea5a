// The binary-upgrade inventory is checked whole before a new image adopts anything from it.
#include "master/inventory_check.hpp"

#include <catch2/catch.hpp>

using Catch::Matchers::Contains;
using molt::master::inventoryDescriptors;
using molt::master::kInventoryVersion;
using molt::master::validateInventory;
using nlohmann::json;

namespace {

json inventory() {
  return {{"version", kInventoryVersion},
          {"config_path", "/etc/molt/molt.json"},
          {"next_generation", 3},
          {"last_errors", json::array()},
          {"journal", ""},
          {"state_file", ""},
          {"servers_down", json::array({json::array({"bk", "s1"})})},
          {"listeners", {{{"key", "127.0.0.1:80"}, {"fd", 7}, {"backlog", 1024}, {"bound", "x"}}}},
          {"tls_zones", {{"ticket_keys", {{"fd", 8}}}, {"rotation_ms", 1000}}},
          {"api", {{"fd", 9}, {"path", "/run/molt/api.sock"}, {"uids", json::array()}}},
          {"api_clients", {{{"fd", 10}, {"seq", 0}}}},
          {"generations",
           {{{"id", 2},
             {"phase", "serving"},
             {"bundle_fd", 11},
             {"session_cache_fd", -1},
             {"server_state_fd", 12},
             {"server_load_fd", 13},
             {"drain_started_ms", 0},
             {"hard_stop_at_ms", 0},
             {"terminating", false},
             {"listeners", {{{"frontend", "fe"}, {"bind", 0}, {"key", "127.0.0.1:80"}}}},
             {"slots",
              {{{"slot", 0},
                {"pid", 1234},
                {"pidfd", 14},
                {"control_fd", 15},
                {"phase", "ready"},
                {"connections", 0},
                {"started_ms", 5}},
               {{"slot", 1},
                {"pid", 0},
                {"pidfd", -1},
                {"control_fd", -1},
                {"phase", "exited"},
                {"connections", 0},
                {"started_ms", 0}}}}}}}};
}

}  // namespace

TEST_CASE("an inventory this binary wrote is one it restores", "[master][upgrade]") {
  REQUIRE(validateInventory(inventory()) == "");
  std::vector<int> fds = inventoryDescriptors(inventory());
  std::sort(fds.begin(), fds.end());
  REQUIRE(fds == std::vector<int>{7, 8, 9, 10, 11, 12, 13, 14, 15});
}

TEST_CASE("an inventory that would make the new image guess is refused, saying where",
          "[master][upgrade]") {
  auto refused = [](const std::function<void(json&)>& change) {
    json doc = inventory();
    change(doc);
    return validateInventory(doc);
  };
  REQUIRE_THAT(refused([](json& d) { d["version"] = kInventoryVersion + 1; }),
               Contains("this binary restores version"));
  REQUIRE_THAT(refused([](json& d) { d.erase("listeners"); }), Contains("listeners: missing"));
  REQUIRE_THAT(refused([](json& d) { d["generations"][0]["slots"][0]["pidfd"] = "14"; }),
               Contains("generations[0].slots[0].pidfd: expected an integer"));
  REQUIRE_THAT(refused([](json& d) { d["generations"][0]["slots"][1]["slot"] = 5; }),
               Contains("generations[0].slots[1].slot: out of range"));
  REQUIRE_THAT(refused([](json& d) { d["generations"][0]["slots"][0]["control_fd"] = -1; }),
               Contains("a live worker without its descriptors"));
  REQUIRE_THAT(refused([](json& d) { d["generations"][0]["listeners"][0]["key"] = "other"; }),
               Contains("names no listener of the inventory"));
  REQUIRE_THAT(refused([](json& d) { d["generations"][0]["phase"] = "gone"; }),
               Contains("unknown phase 'gone'"));
  REQUIRE_THAT(refused([](json& d) { d["servers_down"] = json::array({json::array({"bk"})}); }),
               Contains("servers_down: expected [backend, server] pairs"));
  REQUIRE_THAT(refused([](json& d) { d = json::array(); }), Contains("not a JSON object"));
}
