// Checks that a binary-upgrade inventory (master/upgrade.hpp describes it) can be taken over by
// this binary: before the running master re-execs a new binary (`molt --upgrade-check`, run
// from that binary), and again in the new image before it adopts anything.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace molt::master {

inline constexpr int kInventoryVersion = 2;

// "" when `doc` is an inventory this binary restores: the version it knows, and every key
// present with the type and range restoring reads (descriptors non-negative, listeners named by
// generations present, slots in range). Else the first problem, with its JSON path
// ("generations[1].slots[0].pidfd: expected an integer").
std::string validateInventory(const nlohmann::json& doc);

// Every descriptor `doc` names (a validated inventory): what must stay open, and inherited, for
// another image to take it over.
std::vector<int> inventoryDescriptors(const nlohmann::json& doc);

// Entry point of `molt --upgrade-check -f CONFIG`, run by the old master from the new binary with
// the inventory on `inventoryFd`: validates the inventory and parses CONFIG as this binary would.
// Returns the exit status (0: this binary can take over); the reason otherwise goes to stderr.
int runUpgradeCheck(int inventoryFd, const std::string& configPath);

}  // namespace molt::master
