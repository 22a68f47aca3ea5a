#include "ctl/ctl.hpp"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/proc_memory.hpp"
#include "common/unique_fd.hpp"
#include "ctl/top.hpp"

namespace molt::ctl {
namespace {

constexpr const char* kDefaultSocket = "/run/molt/api.sock";
constexpr const char* kUsage =
    "usage: molt ctl [-s SOCKET | -f CONFIG] [--json] COMMAND [ARG...] [key=value...]\n"
    "       molt ctl --help | --commands\n"
    "commands: proc, status, top [-n COUNT] [-d SECONDS], reload, upgrade, errors,\n"
    "          servers [BACKEND], server.add BACKEND NAME ADDRESS,\n"
    "          server.del BACKEND NAME, server.set BACKEND NAME, backend.add, backend.del NAME,\n"
    "          cert.set FRONTEND PATH, cert.del FRONTEND NAME, map.set FRONTEND HOST VALUE,\n"
    "          map.del FRONTEND HOST, cache, rotate-tickets\n"
    "key=value adds a field to the request (value parsed as JSON when it is JSON, else a string);\n"
    "a dotted key sets a nested field: server.weight=2\n";

// Every command, in the order `molt ctl --commands` lists them (the bash completion reads it).
constexpr const char* kCommands[] = {
    "proc",     "status",     "top",        "reload",     "upgrade",     "errors",
    "servers",  "server.add", "server.del", "server.set", "backend.add", "backend.del",
    "cert.set", "cert.del",   "map.set",    "map.del",    "cache",       "rotate-tickets"};

// The fields positional arguments fill, per command (dotted: nested).
const std::map<std::string, std::vector<std::string>> kPositional = {
    {"servers", {"backend"}},
    {"server.add", {"backend", "server.name", "server.address"}},
    {"server.del", {"backend", "server"}},
    {"server.set", {"backend", "server"}},
    {"backend.del", {"backend"}},
    {"cert.set", {"frontend", "path"}},
    {"cert.del", {"frontend", "name"}},
    {"map.set", {"frontend", "host", "value"}},
    {"map.del", {"frontend", "host"}},
    {"--complete", {"field", "backend"}},
};

struct Options {
  std::string socket = kDefaultSocket;
  bool json = false;
  unsigned iterations = 0;  // top: frames to show (0: until interrupted)
  double delay = 2;         // top: seconds between frames
  nlohmann::json request = nlohmann::json::object();
};

int usage(const std::string& problem) {
  std::fprintf(stderr, "molt ctl: %s\n%s", problem.c_str(), kUsage);
  return 2;
}

nlohmann::json valueOf(const std::string& text) {
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  return parsed.is_discarded() ? nlohmann::json(text) : parsed;
}

// Sets `key` ("weight", or dotted "server.weight") in `request`.
void setField(nlohmann::json& request, const std::string& key, nlohmann::json value) {
  nlohmann::json* at = &request;
  std::size_t start = 0;
  for (std::size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
    at = &(*at)[key.substr(start, dot - start)];
    if (!at->is_object()) *at = nlohmann::json::object();
  }
  (*at)[key.substr(start)] = std::move(value);
}

// Fills `options` from argv; returns "" or a usage problem.
std::string parseArgs(int argc, char** argv, Options& options) {
  std::vector<std::string> positional;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--json") {
      options.json = true;
    } else if ((arg == "-n" || arg == "-d") && options.request.value("cmd", "") == "top") {
      if (i + 1 == argc) return arg + " needs a value";
      char* end = nullptr;
      double value = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || value < (arg == "-n" ? 1 : 0.1) || value > 1e6)
        return arg + (arg == "-n" ? ": a count of at least 1" : ": seconds, at least 0.1");
      if (arg == "-n")
        options.iterations = static_cast<unsigned>(value);
      else
        options.delay = value;
    } else if (arg == "-s" || arg == "-f") {
      if (i + 1 == argc) return arg + " needs a value";
      std::string value = argv[++i];
      if (arg == "-s") {
        options.socket = value;
        continue;
      }
      try {
        options.socket = common::loadConfigFile(value).global.apiSocket;
      } catch (const common::ConfigErrors& e) {
        return std::string("cannot read the api_socket from ") + value + ":\n" + e.what();
      }
      if (options.socket.empty()) return value + " sets no global.api_socket";
    } else if (auto eq = arg.find('='); eq != std::string::npos && !options.request.empty()) {
      setField(options.request, arg.substr(0, eq), valueOf(arg.substr(eq + 1)));
    } else if (options.request.empty()) {
      options.request["cmd"] = arg;
    } else {
      positional.push_back(arg);
    }
  }
  if (options.request.empty()) return "no command";
  const auto names = kPositional.find(options.request["cmd"].get<std::string>());
  size_t allowed = names == kPositional.end() ? 0 : names->second.size();
  if (positional.size() > allowed)
    return "too many arguments for " + options.request["cmd"].get<std::string>();
  // Positional arguments are names, hosts, addresses and paths: always strings ("web1", "80").
  // A relative certificate path is taken from the current directory.
  for (size_t i = 0; i < positional.size(); ++i) {
    std::string value = positional[i];
    if (names->second[i] == "path" && !value.empty() && value.front() != '/')
      value = std::filesystem::absolute(value).lexically_normal().string();
    setField(options.request, names->second[i], value);
  }
  return {};
}

// Sends one request line and reads one response line. "" and `error` set on failure.
std::string exchange(const std::string& socketPath, const std::string& line, std::string& error) {
  common::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socketPath.c_str());
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    error = "connect(" + socketPath + "): " + std::strerror(errno);
    return {};
  }
  std::string out = line + "\n";
  if (send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
    error = std::string("send: ") + std::strerror(errno);
    return {};
  }
  std::string response;
  char chunk[65536];
  while (response.find('\n') == std::string::npos) {
    ssize_t n = recv(fd.get(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    response.append(chunk, static_cast<size_t>(n));
  }
  if (response.empty()) error = "the master closed the connection without an answer";
  return response.substr(0, response.find('\n'));
}

// Prints rows as aligned columns; the first row is the header.
void printTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string bytes(const nlohmann::json& memory, const char* key) {
  if (!memory.is_object() || !memory.contains(key)) return "-";
  return common::formatBytes(memory[key].get<std::uint64_t>());
}

std::string duration(std::uint64_t ms) {
  std::uint64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
  return std::to_string(s / 3600) + "h" + std::to_string(s / 60 % 60) + "m";
}

void printProc(const nlohmann::json& r) {
  std::vector<std::vector<std::string>> rows = {{"GEN", "PHASE", "SLOT", "PID", "CONNS", "PARKED",
                                                 "H2", "IN", "OUT", "TLS", "RSS", "PSS", "PRIVATE",
                                                 "UPTIME", "STOP IN"}};
  const auto& master = r["master"];
  rows.push_back({"-", "master", "-", std::to_string(master["pid"].get<int>()), "-", "-", "-", "-",
                  "-", "-", bytes(master["memory"], "rss"), bytes(master["memory"], "pss"),
                  bytes(master["memory"], "private"), "-", "-"});
  if (r.contains("zygote")) {
    const auto& zygote = r["zygote"];
    rows.push_back({"-", "zygote", "-", std::to_string(zygote["pid"].get<int>()), "-", "-", "-",
                    "-", "-", "-", bytes(zygote["memory"], "rss"), bytes(zygote["memory"], "pss"),
                    bytes(zygote["memory"], "private"), "-", "-"});
  }
  // Migrated connections in and out, and those of a draining worker that cannot move (TLS).
  auto count = [](const nlohmann::json& w, const char* key) {
    return w.contains(key) ? std::to_string(w[key].get<std::uint64_t>()) : std::string("-");
  };
  // HTTP/2 connections and the streams open on them: "2/15".
  auto http2 = [&](const nlohmann::json& w) {
    if (!w.contains("http2_connections")) return std::string("-");
    return count(w, "http2_connections") + "/" + count(w, "http2_streams");
  };
  for (const auto& g : r["generations"]) {
    std::string stop =
        g.contains("hard_stop_in_ms") ? duration(g["hard_stop_in_ms"].get<std::uint64_t>()) : "-";
    for (const auto& w : g["workers"])
      rows.push_back(
          {std::to_string(g["id"].get<unsigned>()), w["phase"].get<std::string>(),
           std::to_string(w["slot"].get<unsigned>()), std::to_string(w["pid"].get<int>()),
           std::to_string(w["connections"].get<unsigned>()), count(w, "parked"), http2(w),
           count(w, "migrated_in"), count(w, "migrated_out"), count(w, "staying_tls"),
           bytes(w["memory"], "rss"), bytes(w["memory"], "pss"), bytes(w["memory"], "private"),
           duration(w["uptime_ms"].get<std::uint64_t>()), stop});
  }
  printTable(rows);
}

void printServers(const nlohmann::json& r) {
  std::vector<std::vector<std::string>> rows = {
      {"BACKEND", "SERVER", "ADDRESS", "WEIGHT", "STATE", "CHECK", "CONNS"}};
  for (const auto& s : r["servers"])
    rows.push_back({s["backend"].get<std::string>(), s["name"].get<std::string>(),
                    s["address"].get<std::string>(), std::to_string(s["weight"].get<unsigned>()),
                    s["state"].get<std::string>(), s["check"].get<std::string>(),
                    std::to_string(s["connections"].get<unsigned>())});
  printTable(rows);
}

void printResponse(const std::string& cmd, const nlohmann::json& r) {
  if (!r.value("ok", false)) {
    std::fprintf(stderr, "molt ctl %s: %s\n", cmd.c_str(),
                 r.value("error", std::string("failed")).c_str());
    for (const auto& e : r.value("errors", nlohmann::json::array()))
      if (e.is_string()) std::fprintf(stderr, "  %s\n", e.get<std::string>().c_str());
    return;
  }
  if (cmd == "proc") return printProc(r);
  if (cmd == "status") {
    std::printf("%s", renderStatus(r).c_str());
    return;
  }
  if (cmd == "servers") return printServers(r);
  if (cmd == "errors") {
    if (r["errors"].empty()) std::printf("no errors: the last reload succeeded\n");
    for (const auto& e : r["errors"]) std::printf("%s\n", e.get<std::string>().c_str());
    return;
  }
  if (r.contains("applied")) {
    std::printf("applied %s (generation %u)\n", r["applied"].get<std::string>().c_str(),
                r.value("generation", 0u));
    if (r.contains("warning"))
      std::printf("warning: %s\n", r["warning"].get<std::string>().c_str());
    return;
  }
  if (r.contains("status")) {
    std::printf("%s\n", r["status"].get<std::string>().c_str());
    return;
  }
  nlohmann::json rest = r;
  rest.erase("ok");
  if (!rest.empty()) std::printf("%s\n", rest.dump(2).c_str());
}

// `molt ctl top`: the status, redrawn every `delay` seconds (cleared first on a terminal), until
// interrupted or after `iterations` frames. A master out of reach (a binary upgrade under way)
// is said so and asked again.
int runTop(const Options& options) {
  bool terminal = isatty(STDOUT_FILENO) == 1;
  for (unsigned frame = 0; options.iterations == 0 || frame < options.iterations; ++frame) {
    if (frame > 0) {
      auto ns = static_cast<long long>(options.delay * 1e9);
      timespec pause{static_cast<time_t>(ns / 1'000'000'000),
                     static_cast<long>(ns % 1'000'000'000)};
      while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
      }
    }
    std::string error;
    std::string line = exchange(options.socket, R"({"cmd":"status"})", error);
    auto response = nlohmann::json::parse(line, nullptr, false);
    unsigned width = 0;
    if (terminal) {
      winsize size{};
      if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0) width = size.ws_col;
      std::printf("\x1b[H\x1b[2J");
    }
    if (!error.empty() || !response.is_object() || !response.value("ok", false)) {
      std::printf("molt ctl top: %s; asking again in %.1f s\n",
                  !error.empty() ? error.c_str() : "malformed answer", options.delay);
    } else {
      try {
        std::printf("%s", renderStatus(response, width).c_str());
      } catch (const nlohmann::json::exception& e) {
        std::printf("molt ctl top: unexpected answer (%s)\n", e.what());
      }
    }
    std::fflush(stdout);
  }
  return 0;
}

// `molt ctl [-s SOCKET | -f CONFIG] --complete FIELD [BACKEND]`: the names a running instance
// knows for FIELD (backend, server of BACKEND, frontend), one per line, for the bash completion.
// Prints nothing when the master does not answer: a completion never shows an error.
int complete(const Options& options) {
  const std::string field = options.request.value("field", "");
  const bool frontends = field == "frontend";
  if (!frontends && field != "backend" && field != "server") return 2;
  std::string error;
  std::string line =
      exchange(options.socket, frontends ? R"({"cmd":"status"})" : R"({"cmd":"servers"})", error);
  auto response = nlohmann::json::parse(line, nullptr, false);
  if (!error.empty() || !response.is_object()) return 1;
  std::set<std::string> names;
  const nlohmann::json& rows = response[frontends ? "frontends" : "servers"];
  if (!rows.is_array()) return 1;
  const std::string backend = options.request.value("backend", "");
  for (const auto& row : rows) {
    if (!row.is_object()) continue;
    const char* key = field == "backend" ? "backend" : "name";
    if (field == "server" && row.value("backend", "") != backend) continue;
    if (row.contains(key) && row[key].is_string()) names.insert(row[key].get<std::string>());
  }
  for (const auto& name : names) std::printf("%s\n", name.c_str());
  return 0;
}

}  // namespace

int runCtl(int argc, char** argv) {
  if (argc >= 1 && (std::strcmp(argv[0], "--help") == 0 || std::strcmp(argv[0], "-h") == 0 ||
                    std::strcmp(argv[0], "help") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc >= 1 && std::strcmp(argv[0], "--commands") == 0) {
    // One line per command: its name, then the field each positional argument fills.
    for (const char* command : kCommands) {
      std::string line = command;
      if (auto fields = kPositional.find(command); fields != kPositional.end())
        for (const auto& field : fields->second) line += " " + field;
      std::printf("%s\n", line.c_str());
    }
    return 0;
  }
  Options options;
  if (std::string problem = parseArgs(argc, argv, options); !problem.empty()) return usage(problem);
  if (options.request["cmd"] == "top") return runTop(options);
  if (options.request["cmd"] == "--complete") return complete(options);
  std::string error;
  std::string line = exchange(options.socket, options.request.dump(), error);
  if (!error.empty()) {
    std::fprintf(stderr, "molt ctl: %s\n", error.c_str());
    return 2;
  }
  auto response = nlohmann::json::parse(line, nullptr, false);
  if (!response.is_object()) {
    std::fprintf(stderr, "molt ctl: malformed answer: %s\n", line.c_str());
    return 2;
  }
  if (options.json) {
    std::printf("%s\n", response.dump(2).c_str());
  } else {
    printResponse(options.request["cmd"].get<std::string>(), response);
  }
  return response.value("ok", false) ? 0 : 1;
}

}  // namespace molt::ctl
