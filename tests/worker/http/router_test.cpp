// Router: routes in order, host forms, host maps, the default backend (issue 4).
#include "worker/http/router.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <string>

#include "worker/backend.hpp"

using molt::common::BackendConfig;
using molt::common::FrontendConfig;
using molt::common::RouteConfig;
using molt::worker::Backend;
using molt::worker::Router;

namespace {

// Backends by name, as a worker's generation holds them.
class Backends {
 public:
  std::shared_ptr<Backend> get(std::string_view name) {
    auto it = byName_.find(std::string(name));
    if (it != byName_.end()) return it->second;
    BackendConfig c;
    c.name = std::string(name);
    auto b = std::make_shared<Backend>(c);
    byName_[c.name] = b;
    return b;
  }
  Router::BackendLookup lookup() {
    return [this](std::string_view name) { return get(name); };
  }

 private:
  std::map<std::string, std::shared_ptr<Backend>> byName_;
};

RouteConfig route(RouteConfig::Kind kind, std::string value, std::string backend) {
  RouteConfig r;
  r.kind = kind;
  r.value = std::move(value);
  r.backend = std::move(backend);
  return r;
}

std::string routed(const Router& router, std::string_view host, std::string_view path) {
  std::string scratch;
  Backend* b = router.route(Router::normalizeHost(host, scratch), path);
  return b ? b->name() : "<none>";
}

}  // namespace

TEST_CASE("routes are tried in order: path prefix, exact host, wildcard, then the default",
          "[http][router]") {
  Backends backends;
  FrontendConfig fe;
  fe.routes.push_back(route(RouteConfig::Kind::PathPrefix, "/.well-known/", "bk_acme"));
  fe.routes.push_back(route(RouteConfig::Kind::Host, "app.example.com", "bk_app"));
  fe.routes.push_back(route(RouteConfig::Kind::Host, "*.example.com", "bk_wild"));
  fe.routes.push_back(route(RouteConfig::Kind::PathPrefix, "/api", "bk_api"));
  fe.defaultBackend = "bk_default";
  Router router(fe, backends.lookup());

  REQUIRE(routed(router, "app.example.com", "/.well-known/x") == "bk_acme");
  REQUIRE(routed(router, "app.example.com", "/") == "bk_app");
  REQUIRE(routed(router, "APP.Example.COM:8080", "/") == "bk_app");
  REQUIRE(routed(router, "a.b.example.com", "/") == "bk_wild");
  REQUIRE(routed(router, "example.com", "/api/v1") == "bk_api");  // the wildcard needs a label
  REQUIRE(routed(router, "notexample.com", "/") == "bk_default");
  REQUIRE(routed(router, "other.org", "/apix") == "bk_api");  // a prefix, not a segment
  REQUIRE(routed(router, "other.org", "/") == "bk_default");
}

TEST_CASE("without a default backend an unrouted request has no backend", "[http][router]") {
  Backends backends;
  FrontendConfig fe;
  fe.routes.push_back(route(RouteConfig::Kind::Host, "a.com", "bk_a"));
  Router router(fe, backends.lookup());
  REQUIRE(routed(router, "a.com", "/") == "bk_a");
  REQUIRE(routed(router, "b.com", "/") == "<none>");
}

TEST_CASE("hosts are normalised: lower case, port stripped, IPv6 literals kept whole",
          "[http][router]") {
  std::string scratch;
  REQUIRE(Router::normalizeHost("Example.COM:8080", scratch) == "example.com");
  REQUIRE(Router::normalizeHost("example.com", scratch) == "example.com");
  REQUIRE(Router::normalizeHost("[::1]:80", scratch) == "[::1]");
  REQUIRE(Router::normalizeHost("[::1]", scratch) == "[::1]");
  REQUIRE(Router::normalizeHost("", scratch).empty());
}

TEST_CASE("the host of a normalised authority is the normalised host", "[http][router]") {
  for (std::string_view host : {"Example.COM.:8080", "example.com", "EXAMPLE.com.", "[::1]:80",
                                "[::1]", "[::1", "a:", ".", "", "Host:1:2"}) {
    INFO(host);
    std::string authority, scratch;
    std::string_view normal = Router::normalizeAuthority(host, authority);
    REQUIRE(Router::hostOf(normal) == Router::normalizeHost(host, scratch));
  }
}

TEST_CASE("a host map of 10k entries routes each host to its backend", "[http][router][host_map]") {
  Backends backends;
  FrontendConfig fe;
  RouteConfig map;
  map.kind = RouteConfig::Kind::HostMap;
  map.backendPrefix = "bk_";
  for (int i = 0; i < 10'000; ++i)
    map.mapEntries.emplace_back("host" + std::to_string(i) + ".example.com",
                                "app" + std::to_string(i % 100));
  fe.routes.push_back(route(RouteConfig::Kind::PathPrefix, "/health", "bk_health"));
  fe.routes.push_back(std::move(map));
  fe.defaultBackend = "bk_no_match";
  auto built = std::chrono::steady_clock::now();
  Router router(fe, backends.lookup());
  INFO("built in " << std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - built)
                          .count()
                   << " ms");

  for (int i = 0; i < 10'000; i += 37) {
    std::string host = "HOST" + std::to_string(i) + ".example.com:443";
    REQUIRE(routed(router, host, "/x") == "bk_app" + std::to_string(i % 100));
  }
  REQUIRE(routed(router, "host9999.example.com", "/health") == "bk_health");  // earlier route
  REQUIRE(routed(router, "host10000.example.com", "/") == "bk_no_match");
}

TEST_CASE("a router keeps the backends it routes to alive, and only as long as it lives",
          "[http][router]") {
  FrontendConfig fe;
  RouteConfig map;
  map.kind = RouteConfig::Kind::HostMap;
  map.backendPrefix = "bk_";
  for (int i = 0; i < 100; ++i)
    map.mapEntries.emplace_back("host" + std::to_string(i) + ".example.com",
                                "app" + std::to_string(i % 3));
  fe.routes.push_back(std::move(map));
  fe.defaultBackend = "bk_app0";
  std::vector<std::weak_ptr<Backend>> watched;
  std::unique_ptr<Router> router;
  {
    Backends backends;  // the worker's own references, dropped on drain
    router = std::make_unique<Router>(fe, backends.lookup());
    for (const char* name : {"bk_app0", "bk_app1", "bk_app2"}) {
      watched.push_back(backends.get(name));
      // One reference per backend, not one per map entry that names it.
      REQUIRE(watched.back().use_count() == 2);
    }
    watched.push_back(backends.get("bk_unused"));
  }
  REQUIRE(watched[3].expired());  // nothing routes to it: freed with the worker's references
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(watched[static_cast<size_t>(i)].expired());
  REQUIRE(routed(*router, "host4.example.com", "/") == "bk_app1");
  router.reset();
  for (const auto& backend : watched) REQUIRE(backend.expired());
}

TEST_CASE("a trailing dot names the same host; the authority form keeps the port",
          "[http][router]") {
  std::string scratch;
  REQUIRE(Router::normalizeHost("Admin.Example.com.", scratch) == "admin.example.com");
  REQUIRE(Router::normalizeHost("admin.example.com.:443", scratch) == "admin.example.com");
  REQUIRE(Router::normalizeAuthority("Admin.Example.com.:443", scratch) == "admin.example.com:443");
  REQUIRE(Router::normalizeAuthority("[::1]:80", scratch) == "[::1]:80");
  REQUIRE(Router::normalizeHost(".", scratch) == ".");
}
