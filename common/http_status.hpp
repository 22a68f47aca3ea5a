// HTTP status codes as text, shared by the proxy and the test origin.
#pragma once

#include <string_view>

namespace molt::common {

// The standard reason phrase of `status` ("Bad Gateway"); for a code without one, the phrase
// of its class ("Client Error", "Server Error", "Other").
std::string_view reasonPhrase(int status);

}  // namespace molt::common
