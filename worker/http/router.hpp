// Router: which backend serves an http request, from one frontend's `routes`.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/config.hpp"

namespace molt::worker {

class Backend;

// Built once per generation from a FrontendConfig (host maps become hash maps here, never per
// request). Routes are tried in file order, the first match wins, then the default backend.
// Holds one reference to each backend it can route to (counted per use, not per entry), so the
// backends of a draining worker live exactly as long as a router or a connection needs them.
class Router {
 public:
  // Finds a backend of the worker's generation by name; null if absent.
  using BackendLookup = std::function<std::shared_ptr<Backend>(std::string_view name)>;

  Router(const common::FrontendConfig& config, const BackendLookup& lookup);

  // The backend for a request whose normalised host (see normalizeHost) is `host` and whose
  // target path is `path`; null when nothing matches and there is no default backend.
  Backend* route(std::string_view host, std::string_view path) const;

  // Runtime API: sets (adds or replaces) / erases `host` (normalised) in the host map of route
  // `route`. Return an error text, empty on success.
  std::string setMapEntry(std::size_t route, const std::string& host,
                          std::shared_ptr<Backend> backend);
  std::string eraseMapEntry(std::size_t route, const std::string& host);
  // Routes to `backend` in any way (map entries included).
  bool uses(const Backend* backend) const { return uses_.count(const_cast<Backend*>(backend)); }

  // Host as routes compare it: lower-case, without a port ("Example.COM:8080" -> "example.com",
  // "[::1]:80" -> "[::1]"). Writes into `scratch` (its storage is reused) and returns a view of it.
  static std::string_view normalizeHost(std::string_view host, std::string& scratch);
  // The host as it goes upstream: normalizeHost's form with the port kept ("Example.COM.:8080"
  // -> "example.com:8080"), so that the server sees the name the request was routed on.
  static std::string_view normalizeAuthority(std::string_view host, std::string& scratch);
  // The host of an authority normalizeAuthority returned, without its port: what normalizeHost
  // gives for the same input, without normalising it again.
  static std::string_view hostOf(std::string_view normalizedAuthority);

 private:
  struct TransparentHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using HostMap = std::unordered_map<std::string, Backend*, TransparentHash, std::equal_to<>>;

  enum class Kind {
    PathPrefix,  // value: the prefix
    HostExact,   // value: the host
    HostSuffix,  // value: ".example.com" for "*.example.com" (any depth of subdomain)
    HostMap      // map: host -> backend
  };
  struct Route {
    Kind kind;
    std::string value;
    Backend* backend = nullptr;
    std::unique_ptr<HostMap> map;
  };

  // Takes a reference for one more use of `backend` (null: nothing) and returns it raw.
  Backend* use(std::shared_ptr<Backend> backend);
  // Gives one use back; the reference goes with the last.
  void release(Backend* backend);

  std::vector<Route> routes_;
  Backend* defaultBackend_ = nullptr;
  std::unordered_map<Backend*, std::pair<std::shared_ptr<Backend>, std::size_t>> uses_;
};

}  // namespace molt::worker
