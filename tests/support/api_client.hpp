// Test support: the runtime API's socket, one JSON line each way (docs/api.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/unique_fd.hpp"

namespace molt::test {

// Connects to the API socket at `path`, with a 30 s receive timeout. Invalid fd on failure.
common::UniqueFd connectApi(const std::string& path);
// Sends one request line on `fd` and parses the answer line (discarded JSON when it is not).
nlohmann::json askApi(int fd, const std::string& line);
// The same on a new connection; the string "connect failed" when there is none.
nlohmann::json askApi(const std::string& path, const std::string& line);
// A request built as JSON.
inline nlohmann::json askApiJson(const std::string& path, const nlohmann::json& request) {
  return askApi(path, request.dump());
}

}  // namespace molt::test
