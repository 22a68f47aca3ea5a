// Helpers of the runtime-change tests (tests/common/runtime_change*_test.cpp).
#pragma once

#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/runtime_change.hpp"
#include "tests/support/memory_files.hpp"

namespace molt::test::runtime {

using namespace molt::common;
using nlohmann::json;

inline const molt::test::MemoryFiles kSideFiles{
    {
        {"/certs/site.pem", "SITE PEM"},
        {"/certs/new.pem", "NEW PEM"},
        {"/maps/hosts.map", "one.example.com 1\ntwo.example.com 2\n"},
    },
    {}};
inline const FileSource kFiles = kSideFiles.source();

inline constexpr const char* kConfig = R"({
  "frontends": [{
    "name": "www",
    "bind": ["127.0.0.1:0", {"address": "127.0.0.1:0", "tls": true}],
    "certificates": ["/certs/site.pem"],
    "routes": [
      {"path_prefix": "/static/", "backend": "bk_static"},
      {"host": "app.example.com", "backend": "bk_app"},
      {"host_map": "/maps/hosts.map", "backend_prefix": "bk_"}
    ],
    "default_backend": "bk_default"
  }, {
    "name": "plain", "bind": ["127.0.0.1:0"], "default_backend": "bk_default"
  }],
  "backends": [
    {"name": "bk_1", "check": {"type": "http", "path": "/health"}, "servers": [
      {"name": "web1", "address": "127.0.0.1:8001"},
      {"name": "web2", "address": "127.0.0.1:8002", "weight": 5, "disabled": true}]},
    {"name": "bk_2", "servers": [{"name": "a", "address": "127.0.0.1:9001"}]},
    {"name": "bk_app"}, {"name": "bk_static"}, {"name": "bk_default"}, {"name": "bk_free"},
    {"name": "bk_deny", "deny": 403}
  ]
})";

inline Config testConfig() {
  return parseConfig(kConfig, "molt.json", kFiles);
}

inline std::string apply(Config& config, json change) {
  return applyRuntimeChange(config, change, kFiles);
}

inline const ServerConfig* findServer(const Config& config, std::string_view backend,
                                      std::string_view name) {
  const BackendConfig* b = config.findBackend(backend);
  if (!b) return nullptr;
  for (const ServerConfig& s : b->servers)
    if (s.name == name) return &s;
  return nullptr;
}

inline std::vector<std::string> serverNames(const Config& config, std::string_view backend) {
  std::vector<std::string> names;
  for (const ServerConfig& s : config.findBackend(backend)->servers) names.push_back(s.name);
  return names;
}

// Everything a change may touch, as text: equal texts, equal configs for these tests.
inline std::string snapshot(const Config& config) {
  std::ostringstream out;
  for (const BackendConfig& b : config.backends) {
    out << "backend " << b.name << " deny " << b.deny << "\n";
    for (const ServerConfig& s : b.servers) {
      out << "  " << s.name << " " << s.address.text() << " w" << s.weight << " a" << int(s.admin)
          << " d" << s.disabled << " c" << s.check << "\n";
    }
  }
  for (const FrontendConfig& f : config.frontends) {
    out << "frontend " << f.name << "\n";
    for (const RuntimeCertificate& c : f.runtimeCertificates) out << "  cert " << c.name << "\n";
    for (const RouteConfig& r : f.routes)
      for (const auto& [host, value] : r.mapEntries)
        out << "  map " << host << " " << value << "\n";
  }
  return out.str();
}

// Installs a certificate validator for one test, and removes it after.
struct ScopedCertificateValidator {
  explicit ScopedCertificateValidator(CertificateValidator v) {
    setCertificateValidator(std::move(v));
  }
  ~ScopedCertificateValidator() { setCertificateValidator(nullptr); }
};

}  // namespace molt::test::runtime
