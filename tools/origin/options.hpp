// Options: molt-origin's command line.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>
#include <vector>

namespace molt::origin {

enum class ListenerKind { Http, TcpEcho };

struct ListenSpec {
  ListenerKind kind;
  std::string text;  // as given: "127.0.0.1:0"
  sockaddr_storage address;
};

struct Options {
  std::vector<ListenSpec> listeners;
  std::string name = "origin";
  bool quiet = true;  // access logging is off either way; the flag is kept for scripts
  bool help = false;
};

// Parses argv. On failure returns nullopt and sets `error` to a one-line message.
std::optional<Options> parseOptions(int argc, char** argv, std::string& error);

// Resolves "HOST:PORT", "[V6]:PORT", "*:PORT" or ":PORT" (any IPv4 address) for bind().
std::optional<sockaddr_storage> resolveListenAddress(const std::string& text, std::string& error);

extern const char* const kUsage;

}  // namespace molt::origin
