// Options: parsing molt-origin's arguments and listen addresses.
#include "tools/origin/options.hpp"

#include <netdb.h>
#include <uv.h>

#include <cstring>
#include <string_view>

#include "tools/origin/http_util.hpp"

namespace molt::origin {

const char* const kUsage =
    "usage: molt-origin [--http ADDR]... [--tcp-echo ADDR]... [--name NAME] [--quiet]\n"
    "  ADDR is HOST:PORT; port 0 picks a free port. Each listener prints\n"
    "  \"listening http|tcp-echo HOST:PORT\" on stdout once ready.\n"
    "HTTP paths: / (NAME), /size/N, /echo, /headers, /slow?ms=N, /slow-body?ms=N&chunks=K,\n"
    "  /status/CODE, /close, /stats, /ws (websocket echo). Every response has X-Origin: NAME.\n"
    "  /stats counts connections accepted on the http listeners, its own included.\n";

namespace {

bool resolveHost(const std::string& host, int port, sockaddr_storage& out) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (uv_ip4_addr(host.c_str(), port, v4) == 0) return true;
  if (uv_ip6_addr(host.c_str(), port, v6) == 0) return true;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || !found) return false;
  std::memcpy(&out, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  if (out.ss_family == AF_INET) v4->sin_port = htons(static_cast<std::uint16_t>(port));
  if (out.ss_family == AF_INET6) v6->sin6_port = htons(static_cast<std::uint16_t>(port));
  return true;
}

bool validName(std::string_view name) {
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  }
  return !name.empty();
}

}  // namespace

std::optional<sockaddr_storage> resolveListenAddress(const std::string& text, std::string& error) {
  std::string_view view(text);
  std::size_t colon = view.rfind(':');
  std::optional<std::uint64_t> port;
  if (colon != std::string_view::npos) port = parseDecimal(view.substr(colon + 1));
  if (!port || *port > 65535) {
    error = "bad address '" + text + "': expected HOST:PORT";
    return std::nullopt;
  }
  std::string host(view.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "*") host = "0.0.0.0";
  sockaddr_storage address{};
  if (!resolveHost(host, static_cast<int>(*port), address)) {
    error = "bad address '" + text + "': cannot resolve '" + host + "'";
    return std::nullopt;
  }
  return address;
}

std::optional<Options> parseOptions(int argc, char** argv, std::string& error) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    if (std::size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (arg == "--http" || arg == "--tcp-echo" || arg == "--name") {
      if (i + 1 == argc) {
        error = std::string(arg) + " needs a value";
        return std::nullopt;
      }
      value = argv[++i];
    }
    if (arg == "--http" || arg == "--tcp-echo") {
      auto address = resolveListenAddress(value, error);
      if (!address) return std::nullopt;
      auto kind = arg == "--http" ? ListenerKind::Http : ListenerKind::TcpEcho;
      options.listeners.push_back(ListenSpec{kind, value, *address});
    } else if (arg == "--name") {
      if (!validName(value)) {
        error = "bad --name: it goes into a header, so printable characters only";
        return std::nullopt;
      }
      options.name = value;
    } else if (arg == "--quiet") {
      options.quiet = true;
    } else if (arg == "--help" || arg == "-h") {
      options.help = true;
    } else {
      error = "unknown argument '" + std::string(argv[i]) + "'";
      return std::nullopt;
    }
  }
  if (options.listeners.empty() && !options.help) {
    error = "nothing to do: give at least one --http or --tcp-echo";
    return std::nullopt;
  }
  return options;
}

}  // namespace molt::origin
