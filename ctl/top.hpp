// `molt ctl top` and `molt ctl status`: the status page's facts (the API's "status") as text.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace molt::ctl {

// One screen: instance summary, generations and workers, frontends, backends, the last reload.
// `width`: the terminal's columns (long lines are cut there; 0: no limit).
std::string renderStatus(const nlohmann::json& status, unsigned width = 0);

}  // namespace molt::ctl
