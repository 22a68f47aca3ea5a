#include "master/counters.hpp"

#include <algorithm>

namespace molt::master {
namespace {

std::uint64_t load(const shm::Counter& c) {
  return c.load(std::memory_order_relaxed);
}

void raise(std::uint64_t& last, const shm::Counter& c) {
  last = std::max(last, load(c));
}

std::uint64_t number(const nlohmann::json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

nlohmann::json frontendJson(const FrontendTotals& f) {
  return {{"connections", f.connections},
          {"requests", f.requests},
          {"responses", std::vector<std::uint64_t>(std::begin(f.responses), std::end(f.responses))},
          {"bytes_in", f.bytesIn},
          {"bytes_out", f.bytesOut},
          {"tls_full", f.tlsFull},
          {"tls_resumed", f.tlsResumed}};
}

FrontendTotals frontendFrom(const nlohmann::json& doc) {
  FrontendTotals f;
  if (!doc.is_object()) return f;
  f.connections = number(doc, "connections");
  f.requests = number(doc, "requests");
  if (auto r = doc.find("responses"); r != doc.end() && r->is_array())
    for (std::size_t i = 0; i < 5 && i < r->size(); ++i)
      if ((*r)[i].is_number_unsigned()) f.responses[i] = (*r)[i].get<std::uint64_t>();
  f.bytesIn = number(doc, "bytes_in");
  f.bytesOut = number(doc, "bytes_out");
  f.tlsFull = number(doc, "tls_full");
  f.tlsResumed = number(doc, "tls_resumed");
  return f;
}

nlohmann::json backendJson(const BackendTotals& b) {
  return {{"requests", b.requests},
          {"responses", b.responses},
          {"micros", b.micros},
          {"buckets", std::vector<std::uint64_t>(std::begin(b.buckets), std::end(b.buckets))}};
}

BackendTotals backendFrom(const nlohmann::json& doc) {
  BackendTotals b;
  if (!doc.is_object()) return b;
  b.requests = number(doc, "requests");
  b.responses = number(doc, "responses");
  b.micros = number(doc, "micros");
  if (auto r = doc.find("buckets"); r != doc.end() && r->is_array())
    for (std::size_t i = 0; i < shm::kBucketCount && i < r->size(); ++i)
      if ((*r)[i].is_number_unsigned()) b.buckets[i] = (*r)[i].get<std::uint64_t>();
  return b;
}

}  // namespace

void FrontendTotals::add(const FrontendTotals& o) {
  connections += o.connections;
  requests += o.requests;
  for (int i = 0; i < 5; ++i) responses[i] += o.responses[i];
  bytesIn += o.bytesIn;
  bytesOut += o.bytesOut;
  tlsFull += o.tlsFull;
  tlsResumed += o.tlsResumed;
}

void BackendTotals::add(const BackendTotals& o) {
  requests += o.requests;
  responses += o.responses;
  micros += o.micros;
  for (std::size_t i = 0; i < shm::kBucketCount; ++i) buckets[i] += o.buckets[i];
}

void CounterTotals::add(const CounterTotals& other) {
  for (const auto& [name, f] : other.frontends) frontends[name].add(f);
  for (const auto& [name, b] : other.backends) backends[name].add(b);
}

nlohmann::json CounterTotals::toJson() const {
  nlohmann::json doc = {{"frontends", nlohmann::json::object()},
                        {"backends", nlohmann::json::object()}};
  for (const auto& [name, f] : frontends) doc["frontends"][name] = frontendJson(f);
  for (const auto& [name, b] : backends) doc["backends"][name] = backendJson(b);
  return doc;
}

CounterTotals CounterTotals::fromJson(const nlohmann::json& doc) {
  CounterTotals t;
  if (!doc.is_object()) return t;
  if (auto f = doc.find("frontends"); f != doc.end() && f->is_object())
    for (const auto& [name, value] : f->items()) t.frontends[name] = frontendFrom(value);
  if (auto b = doc.find("backends"); b != doc.end() && b->is_object())
    for (const auto& [name, value] : b->items()) t.backends[name] = backendFrom(value);
  return t;
}

WorkerCounters::WorkerCounters(std::unique_ptr<shm::WorkerStats> zone,
                               std::vector<std::string> frontends)
    : zone_(std::move(zone)), frontendNames_(std::move(frontends)) {
  frontendNames_.resize(zone_->layout().frontends);
  frontends_.resize(zone_->layout().frontends);
}

void WorkerCounters::fold() {
  const shm::StatsLayout& layout = zone_->layout();
  for (std::uint32_t i = 0; i < layout.frontends; ++i) {
    const shm::FrontendRow& row = zone_->frontend(i);
    FrontendTotals& f = frontends_[i];
    raise(f.connections, row.connections);
    raise(f.requests, row.requests);
    for (int c = 0; c < 5; ++c) raise(f.responses[c], row.responses[c]);
    raise(f.bytesIn, row.bytesIn);
    raise(f.bytesOut, row.bytesOut);
    raise(f.tlsFull, row.tlsFull);
    raise(f.tlsResumed, row.tlsResumed);
  }
  // Rows are claimed in order: the first one never named ends the scan.
  for (std::uint32_t i = 0; i < layout.backends; ++i) {
    if (i == backendNames_.size()) {
      std::string name = zone_->backendName(i);
      if (name.empty()) break;
      backendNames_.push_back(std::move(name));
      backends_.emplace_back();
    }
    const shm::BackendRow& row = zone_->backend(i);
    BackendTotals& b = backends_[i];
    raise(b.requests, row.requests);
    raise(b.responses, row.responses);
    raise(b.micros, row.responseMicros);
    for (std::size_t k = 0; k < shm::kBucketCount; ++k) raise(b.buckets[k], row.buckets[k]);
  }
}

void WorkerCounters::addTo(CounterTotals& totals) const {
  for (std::size_t i = 0; i < frontends_.size(); ++i)
    if (!frontendNames_[i].empty()) totals.frontends[frontendNames_[i]].add(frontends_[i]);
  for (std::size_t i = 0; i < backends_.size(); ++i)
    totals.backends[backendNames_[i]].add(backends_[i]);
}

std::uint64_t WorkerCounters::connections() const {
  return std::min<std::uint64_t>(load(zone_->worker().connections), 1u << 30);
}

nlohmann::json WorkerCounters::inventory(std::vector<int>& fds) const {
  nlohmann::json frontends = nlohmann::json::array(), backends = nlohmann::json::array();
  for (std::size_t i = 0; i < frontends_.size(); ++i)
    frontends.push_back({{"name", frontendNames_[i]}, {"last", frontendJson(frontends_[i])}});
  for (std::size_t i = 0; i < backends_.size(); ++i)
    backends.push_back({{"name", backendNames_[i]}, {"last", backendJson(backends_[i])}});
  fds.push_back(zone_->zone().fd());
  return {{"fd", zone_->zone().fd()},
          {"frontend_rows", zone_->layout().frontends},
          {"backend_rows", zone_->layout().backends},
          {"frontends", frontends},
          {"backends", backends}};
}

std::unique_ptr<WorkerCounters> WorkerCounters::restore(const nlohmann::json& entry,
                                                        std::string& error) {
  auto layout = shm::StatsLayout::of(entry.at("frontend_rows").get<std::uint32_t>(),
                                     entry.at("backend_rows").get<std::uint32_t>());
  auto zone = shm::WorkerStats::adopt(common::UniqueFd(entry.at("fd").get<int>()), layout, error);
  if (!zone) return nullptr;
  std::vector<std::string> names;
  const auto& frontends = entry.at("frontends");
  for (const auto& f : frontends) names.push_back(f.at("name").get<std::string>());
  auto counters = std::make_unique<WorkerCounters>(std::move(zone), std::move(names));
  for (std::size_t i = 0; i < frontends.size() && i < counters->frontends_.size(); ++i)
    counters->frontends_[i] = frontendFrom(frontends[i].at("last"));
  for (const auto& b : entry.at("backends")) {
    if (counters->backends_.size() >= layout.backends) break;
    counters->backendNames_.push_back(b.at("name").get<std::string>());
    counters->backends_.push_back(backendFrom(b.at("last")));
  }
  return counters;
}

Histogram::Histogram(std::vector<double> upperBounds)
    : bounds(std::move(upperBounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double value) {
  std::size_t i = static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), value) -
                                           bounds.begin());
  ++counts[i];
  sum += value;
  ++count;
}

nlohmann::json Histogram::toJson() const {
  return {{"bounds", bounds}, {"counts", counts}, {"sum", sum}, {"count", count}};
}

void Histogram::fromJson(const nlohmann::json& doc) {
  if (!doc.is_object() || doc.value("bounds", std::vector<double>{}) != bounds) return;
  auto restored = doc.value("counts", std::vector<std::uint64_t>{});
  if (restored.size() != counts.size()) return;
  counts = std::move(restored);
  sum = doc.value("sum", 0.0);
  count = doc.value("count", std::uint64_t{0});
}

nlohmann::json MasterCounters::toJson() const {
  nlohmann::json changeList = nlohmann::json::array(), failures = nlohmann::json::array();
  for (const auto& [key, n] : changes) changeList.push_back({key.first, key.second, n});
  for (const auto& [key, n] : checkFailures) failures.push_back({key.first, key.second, n});
  return {{"reloads_ok", reloadsOk},
          {"reloads_failed", reloadsFailed},
          {"reload_seconds", reloadSeconds.toJson()},
          {"changes", changeList},
          {"check_failures", failures},
          {"cache_hits", {cacheHitsBase, cacheHitsLast}},
          {"cache_misses", {cacheMissesBase, cacheMissesLast}}};
}

void MasterCounters::fromJson(const nlohmann::json& doc) {
  if (!doc.is_object()) return;
  reloadsOk = number(doc, "reloads_ok");
  reloadsFailed = number(doc, "reloads_failed");
  if (auto h = doc.find("reload_seconds"); h != doc.end()) reloadSeconds.fromJson(*h);
  auto triples = [&doc](const char* key, auto& into) {
    auto list = doc.find(key);
    if (list == doc.end() || !list->is_array()) return;
    for (const auto& t : *list)
      if (t.is_array() && t.size() == 3 && t[0].is_string() && t[1].is_string() &&
          t[2].is_number_unsigned())
        into[{t[0].get<std::string>(), t[1].get<std::string>()}] = t[2].get<std::uint64_t>();
  };
  triples("changes", changes);
  triples("check_failures", checkFailures);
  auto pair = [&doc](const char* key, std::uint64_t& base, std::uint64_t& last) {
    auto p = doc.find(key);
    if (p == doc.end() || !p->is_array() || p->size() != 2 || !(*p)[0].is_number_unsigned() ||
        !(*p)[1].is_number_unsigned())
      return;
    base = (*p)[0].get<std::uint64_t>();
    last = (*p)[1].get<std::uint64_t>();
  };
  pair("cache_hits", cacheHitsBase, cacheHitsLast);
  pair("cache_misses", cacheMissesBase, cacheMissesLast);
}

}  // namespace molt::master
