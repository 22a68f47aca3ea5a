// Small text helpers for molt-origin's HTTP side: reason phrases, request targets, query values.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/http_status.hpp"

namespace molt::origin {

using common::reasonPhrase;

// The path of a request target: origin-form or absolute-form ("http://h/p?q" -> "/p"), without
// the query.
std::string_view targetPath(std::string_view target);

// The decimal value of `name` in the target's query ("/slow?ms=20", "ms" -> 20); nullopt when
// absent or not a number.
std::optional<std::uint64_t> queryNumber(std::string_view target, std::string_view name);

// A plain decimal number (digits only, no overflow); nullopt otherwise.
std::optional<std::uint64_t> parseDecimal(std::string_view text);

bool equalsIgnoreCase(std::string_view a, std::string_view b);

// Without leading and trailing spaces and tabs.
std::string_view trimWhitespace(std::string_view text);

}  // namespace molt::origin
