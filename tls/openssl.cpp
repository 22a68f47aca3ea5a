#include "tls/openssl.hpp"

#include <openssl/err.h>

namespace molt::tls {

std::string opensslError(const char* fallback) {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? fallback : text;
}

}  // namespace molt::tls
