// Durations ("250ms", "1h30m") and sizes ("64MB") as written in a config file.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace molt::common {

using Millis = std::chrono::milliseconds;

// Parses one or more NUMBER UNIT groups, units ms, s, m, h, largest first, each at most once
// ("1h30m", "90s", "250ms"). A bare number is refused ("missing unit (ms, s, m, h)"). Returns
// nullopt with `error` set to a short reason on failure.
std::optional<Millis> parseDuration(std::string_view text, std::string& error);

// Parses NUMBER UNIT with unit B, KB, MB or GB (powers of 1024): "512KB", "64MB". A bare
// number, an unknown unit or a result above 2^64-1 bytes is refused with `error` set.
std::optional<std::uint64_t> parseSize(std::string_view text, std::string& error);

// The shortest text parseDuration reads back as `d` ("1h30m", "250ms", "0s"); d must be >= 0.
std::string formatDuration(Millis d);

// The largest exact unit: "64MB", "1536KB", "100B".
std::string formatSize(std::uint64_t bytes);

}  // namespace molt::common
