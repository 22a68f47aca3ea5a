#include "worker/http/router.hpp"

#include "worker/backend.hpp"

namespace molt::worker {

Router::Router(const common::FrontendConfig& config, const BackendLookup& lookup) {
  using common::RouteConfig;
  for (const RouteConfig& r : config.routes) {
    Route route;
    if (r.kind == RouteConfig::Kind::PathPrefix) {
      route.kind = Kind::PathPrefix;
      route.value = r.value;
    } else if (r.kind == RouteConfig::Kind::Host && r.value.starts_with("*.")) {
      route.kind = Kind::HostSuffix;
      route.value = r.value.substr(1);
    } else if (r.kind == RouteConfig::Kind::Host) {
      route.kind = Kind::HostExact;
      route.value = r.value;
    } else {
      route.kind = Kind::HostMap;
      route.map = std::make_unique<HostMap>();
      route.map->reserve(r.mapEntries.size());
      std::string name;
      for (const auto& [host, value] : r.mapEntries) {
        name = r.backendPrefix + value;
        if (auto backend = lookup(name)) route.map->emplace(host, use(std::move(backend)));
      }
    }
    if (route.kind != Kind::HostMap) route.backend = use(lookup(r.backend));
    routes_.push_back(std::move(route));
  }
  if (!config.defaultBackend.empty()) defaultBackend_ = use(lookup(config.defaultBackend));
}

std::string Router::setMapEntry(std::size_t route, const std::string& host,
                                std::shared_ptr<Backend> backend) {
  if (route >= routes_.size() || routes_[route].kind != Kind::HostMap)
    return "route " + std::to_string(route) + " is not a host_map route";
  if (!backend) return "no backend";
  Backend* raw = use(std::move(backend));
  auto [it, inserted] = routes_[route].map->try_emplace(host, raw);
  if (!inserted) {
    release(it->second);
    it->second = raw;
  }
  return {};
}

std::string Router::eraseMapEntry(std::size_t route, const std::string& host) {
  if (route >= routes_.size() || routes_[route].kind != Kind::HostMap)
    return "route " + std::to_string(route) + " is not a host_map route";
  auto it = routes_[route].map->find(host);
  if (it == routes_[route].map->end()) return "no entry for host '" + host + "'";
  release(it->second);
  routes_[route].map->erase(it);
  return {};
}

Backend* Router::use(std::shared_ptr<Backend> backend) {
  Backend* raw = backend.get();
  if (!raw) return nullptr;
  auto [it, inserted] = uses_.try_emplace(raw, std::move(backend), 0);
  ++it->second.second;
  return raw;
}

void Router::release(Backend* backend) {
  auto it = uses_.find(backend);
  if (it != uses_.end() && --it->second.second == 0) uses_.erase(it);
}

Backend* Router::route(std::string_view host, std::string_view path) const {
  for (const Route& r : routes_) {
    switch (r.kind) {
      case Kind::PathPrefix:
        if (path.starts_with(r.value)) return r.backend;
        break;
      case Kind::HostExact:
        if (host == r.value) return r.backend;
        break;
      case Kind::HostSuffix:
        if (host.size() > r.value.size() && host.ends_with(r.value)) return r.backend;
        break;
      case Kind::HostMap:
        if (auto it = r.map->find(host); it != r.map->end()) return it->second;
        break;
    }
  }
  return defaultBackend_;
}

namespace {

// Where the port begins ("" when there is none), a bracketed IPv6 literal kept whole.
std::size_t hostEnd(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    std::size_t close = host.find(']');
    return close == std::string_view::npos ? host.size() : close + 1;
  }
  std::size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host.size() : colon;
}

// Lower case, one trailing dot dropped ("Example.COM." names example.com).
void appendNormalName(std::string& out, std::string_view name) {
  if (name.size() > 1 && name.back() == '.' && name.front() != '[') name.remove_suffix(1);
  std::size_t at = out.size();
  out.append(name);
  for (std::size_t i = at; i < out.size(); ++i)
    if (out[i] >= 'A' && out[i] <= 'Z') out[i] = static_cast<char>(out[i] - 'A' + 'a');
}

}  // namespace

std::string_view Router::normalizeHost(std::string_view host, std::string& scratch) {
  scratch.clear();
  appendNormalName(scratch, host.substr(0, hostEnd(host)));
  return scratch;
}

std::string_view Router::hostOf(std::string_view normalizedAuthority) {
  return normalizedAuthority.substr(0, hostEnd(normalizedAuthority));
}

std::string_view Router::normalizeAuthority(std::string_view host, std::string& scratch) {
  std::size_t end = hostEnd(host);
  scratch.clear();
  appendNormalName(scratch, host.substr(0, end));
  scratch.append(host.substr(end));
  return scratch;
}

}  // namespace molt::worker
