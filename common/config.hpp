// The validated configuration model: everything a generation is built from.
//
// Produced only by parseConfig()/loadConfigFile() (common/config.cpp), which accept the JSON-with-
// comments format of docs/configuration.md and report every problem at once. The master parses
// the file; a worker parses the same text again from its handover bundle (see FileSource), so the
// model needs no serialisation of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/address.hpp"

namespace molt::common {

using Millis = std::chrono::milliseconds;

enum class Mode { Tcp, Http };
enum class Balance { RoundRobin, LeastConn, Source, Random };
enum class CheckType { Tcp, Http };
enum class LogFormat { Text, Json };
// A server's administrative state (the values are the server-state zone's admin byte).
enum class ServerAdmin : std::uint8_t {
  Ready = 0,  // takes new traffic (when up and of weight above 0)
  Drain = 1,  // keeps its connections, gets no new ones
  Maint = 2,  // gets nothing
};

struct GlobalConfig {
  unsigned workers = 0;  // 0 in the file is refused; absent means the number of CPUs
  Millis hardStopAfter = std::chrono::minutes(30);
  unsigned maxOldGenerations = 4;
  Millis closeSpread = std::chrono::seconds(5);
  // Draining workers hand their plaintext connections at a clean boundary to the newest
  // generation (docs/operations.md, "Connection migration").
  bool migrate = true;
  std::string apiSocket;  // empty: no runtime API
  std::string user, group;
  std::vector<std::string> apiUsers;                // besides root and the master's own uid
  Millis reloadTimeout = std::chrono::seconds(60);  // a new generation not ready by then: abandoned
  std::string stateFile;
  LogFormat logFormat = LogFormat::Text;
  // The master's metrics endpoint (/metrics, the status page /, /healthz); absent: none.
  std::optional<SocketAddress> metrics;
  std::string metricsText;  // as written
};

struct TlsConfig {
  std::uint64_t sessionCacheBytes = 0;  // 0: no shared session cache
  Millis ticketKeyRotation = std::chrono::hours(12);
  Millis sessionTimeout = std::chrono::minutes(5);
  std::string ciphers;                 // TLS 1.2 cipher list; empty: OpenSSL's secure default
  std::string ciphersuites;            // TLS 1.3 suites; empty: OpenSSL's default
  std::string minVersion = "TLSv1.2";  // "TLSv1.2" or "TLSv1.3"
  bool tickets = true;                 // false: no session tickets (TLS 1.2 resumes by session id)
  // true: the server's order of ciphers and signature algorithms, not the client's
  bool preferServerCiphers = false;
};

// The fleet tier ("fleet"): TLS resumption shared with other instances through Redis.
struct FleetConfig {
  bool enabled = false;                       // "fleet" present
  std::string redis;                          // as written: "HOST:PORT" or "unix:/PATH"
  std::string prefix = "molt:";               // of every key and channel molt uses
  std::string passwordFile;                   // empty: no AUTH
  std::string password;                       // the file's first line, read through the FileSource
  Millis sessionTtl = std::chrono::hours(1);  // of the sessions written to Redis
  Millis lookupTimeout = std::chrono::milliseconds(50);  // a handshake waits this long at most
};

struct BindConfig {
  std::string text;  // as written, after normalisation: the key listeners are reused by
  SocketAddress address;
  bool tls = false;
  int backlog = 1024;
  // The application protocols of an http frontend's bind, in order of preference: offered by
  // ALPN on TLS; on a plaintext bind, "h2" accepts HTTP/2 with prior knowledge.
  bool h2 = true;
  bool http11 = true;
  // The first protocol to pick over ALPN when the client offers both.
  bool preferH2 = true;
};

// HTTP/2 on an http frontend's connections ("http2").
struct Http2Config {
  std::uint32_t maxConcurrentStreams = 100;
  std::uint32_t maxHeaderListSize = 64 * 1024;  // decoded bytes (name + value + 32 per field)
  std::uint32_t initialWindowSize = 64 * 1024;  // each stream's receive window (uploads)
};

struct RouteConfig {
  enum class Kind { PathPrefix, Host, HostMap };
  Kind kind = Kind::PathPrefix;
  std::string value;    // the prefix, the host (lower-case, may start with "*."), or the map path
  std::string backend;  // PathPrefix and Host
  std::string backendPrefix;  // HostMap
  // HostMap: the map's (host, value) entries in file order, host lower-cased; the backend of an
  // entry is backendPrefix + value.
  std::vector<std::pair<std::string, std::string>> mapEntries;
};

struct FrontendTimeouts {
  Millis client = std::chrono::seconds(50);
  Millis httpRequest = std::chrono::seconds(10);
  Millis keepAlive = std::chrono::seconds(5);
};

// A certificate added through the runtime API (cert.set), not read from the config file.
struct RuntimeCertificate {
  std::string name;  // unique in its frontend; cert.set of the same name replaces it
  std::string pem;   // the leaf certificate, its chain, and its private key
};

struct FrontendConfig {
  std::string name;
  std::uint32_t index = 0;  // its place in the file's frontends (a worker's stats row)
  Mode mode = Mode::Http;
  std::vector<BindConfig> binds;
  std::vector<std::string> certificates;  // paths as written (files or directories)
  // Added to the SNI table after the file's certificates, in this order; for a name both serve,
  // the runtime certificate wins.
  std::vector<RuntimeCertificate> runtimeCertificates;
  std::vector<RouteConfig> routes;
  std::string defaultBackend;  // may be empty in http mode (then unrouted requests get 503)
  FrontendTimeouts timeouts;
  std::uint64_t maxRequestBody = 0;  // http: larger request bodies get 413; 0: no limit
  Http2Config http2;
  // access_log.format; unset: global.log_format.
  std::optional<LogFormat> accessLogFormat;
};

struct CheckConfig {
  CheckType type = CheckType::Tcp;
  std::string method = "GET";
  std::string path = "/";
  std::string host;  // empty: no Host header beyond the server address
  int statusMin = 200, statusMax = 399;
  Millis interval = std::chrono::seconds(2);
  Millis timeout = std::chrono::seconds(1);
  unsigned rise = 2, fall = 3;
};

struct ServerConfig {
  std::string name;
  SocketAddress address;
  unsigned weight = 1;
  bool check = false;  // resolved: true when this server is health-checked
  // The state a generation starts the server in: "disabled": true in the file is Maint, and a
  // runtime server.set changes it.
  ServerAdmin admin = ServerAdmin::Ready;
  // admin == Maint, kept as its own flag: workers keep no copy of such a server and health checks
  // skip it (until a later generation starts it otherwise).
  bool disabled = false;
  // A per-server check object merged over the backend's (or the defaults); also the default tcp
  // check when the server says "check": true and its backend has no check object.
  // Shared by every server a template made: one object, not one per server.
  std::shared_ptr<const CheckConfig> checkOverride;
  // The master's record of the server's row in its generation's server-state zone (assigned when
  // the zone is built, or when the runtime API adds the server); not read from the file.
  std::uint64_t stateRow = ~std::uint64_t{0};
};

struct BackendTimeouts {
  Millis connect = std::chrono::seconds(5);
  Millis server = std::chrono::seconds(50);
  Millis tunnel = std::chrono::hours(1);
};

struct BackendConfig {
  std::string name;
  Balance balance = Balance::RoundRobin;
  std::optional<CheckConfig> check;  // present: servers are checked unless they say "check": false
  BackendTimeouts timeouts;
  std::vector<ServerConfig> servers;  // templates expanded, in file order
  int deny = 0;                       // non-zero: the backend answers with this status itself
  unsigned retries = 3;               // further servers tried after a connect failure

  // The check `server` (one of this backend's) runs: its merged override, else the backend's
  // check, else the default tcp check; nullptr when the server is not checked.
  const CheckConfig* checkOf(const ServerConfig& server) const;
};

struct Config {
  std::string fileName;
  GlobalConfig global;
  TlsConfig tls;
  FleetConfig fleet;
  std::vector<FrontendConfig> frontends;
  std::vector<BackendConfig> backends;
  // Every side file read or directory listed through the FileSource (host maps, certificate
  // files, certificate directories and each file in them), in first-read order, no duplicates.
  // The master puts these in a worker's handover bundle.
  std::vector<std::string> sideFiles;

  const BackendConfig* findBackend(std::string_view name) const;
  BackendConfig* findBackend(std::string_view name) {
    return const_cast<BackendConfig*>(std::as_const(*this).findBackend(name));
  }
};

// One problem found in a config, printed as "FILE:LINE:COL: json.path: message".
struct ConfigError {
  std::string file;
  int line = 0, column = 0;  // 1-based; 0 when the problem has no position (unreadable file)
  std::string path;          // "backends[3].servers[7].address"; empty for syntax errors
  std::string message;
  std::string str() const;
};

// Thrown by parseConfig with every problem found, in file order.
class ConfigErrors : public std::exception {
 public:
  explicit ConfigErrors(std::vector<ConfigError> errors);
  const std::vector<ConfigError>& errors() const { return errors_; }
  const char* what() const noexcept override { return text_.c_str(); }  // one error a line

 private:
  std::vector<ConfigError> errors_;
  std::string text_;
};

// Where a config's side files (host maps, certificates) come from. The master reads the disk;
// a worker reads the bundle its master handed over, so both see the same bytes.
struct FileSource {
  // Whole contents of `path`, or nullopt with `error` set (e.g. strerror text).
  std::function<std::optional<std::string>(const std::string& path, std::string& error)> read;
  // Names of the regular files in a directory (symlinks followed, hidden names skipped), sorted;
  // nullopt when `path` is not a readable directory.
  std::function<std::optional<std::vector<std::string>>(const std::string& path,
                                                        std::string& error)>
      list;
  static FileSource disk();
};

// Checks a parsed config further with code common/ cannot link (certificates through OpenSSL).
// Reports each problem by JSON path ("frontends[0].certificates[1]"); the position comes from
// the path. Runs only when the config has no other error.
using ConfigValidator = std::function<void(
    const Config& config, const FileSource& files,
    const std::function<void(const std::string& path, const std::string& message)>& report)>;

// Installs the validator every later parseConfig runs (process-wide; main() sets it for the
// master and `molt -c`, not for workers, which trust the bundle their master validated).
void setConfigValidator(ConfigValidator validator);

// Parses and validates `text` (JSON with // and /* */ comments). Throws ConfigErrors.
Config parseConfig(std::string_view text, const std::string& fileName,
                   const FileSource& files = FileSource::disk());

// Reads `path` and parses it. Throws ConfigErrors (an unreadable file is one error).
Config loadConfigFile(const std::string& path, const FileSource& files = FileSource::disk());

}  // namespace molt::common
