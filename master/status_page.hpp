// The status page the metrics endpoint serves at "/": one self-contained HTML document (inline
// style, inline SVG chart, a few lines of script that refresh it), rendered from
// Metrics::status().
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace molt::master {

std::string renderStatusPage(const nlohmann::json& status);

}  // namespace molt::master
