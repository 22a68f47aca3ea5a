#include "master/inventory_check.hpp"

#include <unistd.h>

#include <cstdio>
#include <set>

#include "common/config.hpp"

namespace molt::master {
namespace {

// Walks one JSON object, keeping the first problem as "path.key: what".
class Check {
 public:
  Check(const nlohmann::json& value, std::string path, std::string& error)
      : value_(value), path_(std::move(path)), error_(error) {
    if (!value.is_object()) fail("", "expected an object");
  }
  const nlohmann::json* get(const char* key, bool required = true) {
    if (!value_.is_object()) return nullptr;
    auto it = value_.find(key);
    if (it == value_.end()) {
      if (required) fail(key, "missing");
      return nullptr;
    }
    return &*it;
  }
  void integer(const char* key, long long min = 0, bool required = true) {
    const nlohmann::json* v = get(key, required);
    if (!v) return;
    if (!v->is_number_integer()) return fail(key, "expected an integer");
    if (v->get<long long>() < min) fail(key, "below " + std::to_string(min));
  }
  void string(const char* key, bool required = true) {
    const nlohmann::json* v = get(key, required);
    if (v && !v->is_string()) fail(key, "expected a string");
  }
  void boolean(const char* key) {
    const nlohmann::json* v = get(key);
    if (v && !v->is_boolean()) fail(key, "expected true or false");
  }
  const nlohmann::json* array(const char* key, bool required = true) {
    const nlohmann::json* v = get(key, required);
    if (v && !v->is_array()) {
      fail(key, "expected an array");
      return nullptr;
    }
    return v;
  }
  std::string at(const char* key, std::size_t index) const {
    return path_ + (path_.empty() ? "" : ".") + key + "[" + std::to_string(index) + "]";
  }
  std::string at(const char* key) const { return path_ + (path_.empty() ? "" : ".") + key; }
  void fail(const std::string& key, const std::string& what) {
    if (!error_.empty()) return;
    std::string where = key.empty() ? path_ : at(key.c_str());
    error_ = (where.empty() ? "" : where + ": ") + what;
  }
  bool ok() const { return error_.empty(); }

 private:
  const nlohmann::json& value_;
  std::string path_;
  std::string& error_;
};

void checkSlots(Check& g, std::string& error) {
  const nlohmann::json* slots = g.array("slots");
  if (!slots) return;
  for (std::size_t i = 0; i < slots->size() && error.empty(); ++i) {
    Check s((*slots)[i], g.at("slots", i), error);
    s.integer("slot");
    if (s.ok() && (*slots)[i]["slot"].get<std::size_t>() >= slots->size())
      s.fail("slot", "out of range");
    s.integer("pid");
    s.integer("pidfd", -1);
    s.integer("control_fd", -1);
    s.string("phase");
    s.integer("connections");
    s.integer("started_ms");
    if (const nlohmann::json* counters = s.get("counters", false)) {
      Check c(*counters, s.at("counters"), error);
      c.integer("fd");
      c.integer("frontend_rows");
      c.integer("backend_rows");
      c.array("frontends");
      c.array("backends");
    }
    if (s.ok() && (*slots)[i]["pid"].get<long long>() > 0 &&
        ((*slots)[i]["pidfd"].get<int>() < 0 || (*slots)[i]["control_fd"].get<int>() < 0))
      s.fail("", "a live worker without its descriptors");
  }
}

void checkGeneration(const nlohmann::json& value, const std::string& path,
                     const std::set<std::string>& listenerKeys, std::string& error) {
  Check g(value, path, error);
  g.integer("id", 1);
  g.string("phase");
  if (g.ok()) {
    std::string phase = value["phase"].get<std::string>();
    if (phase != "starting" && phase != "serving" && phase != "draining")
      g.fail("phase", "unknown phase '" + phase + "'");
  }
  for (const char* fd : {"bundle_fd", "session_cache_fd", "server_state_fd", "server_load_fd"})
    g.integer(fd, -1);
  g.integer("drain_started_ms");
  g.integer("hard_stop_at_ms");
  g.boolean("terminating");
  if (const nlohmann::json* listeners = g.array("listeners")) {
    for (std::size_t i = 0; i < listeners->size() && error.empty(); ++i) {
      Check l((*listeners)[i], g.at("listeners", i), error);
      l.string("frontend");
      l.integer("bind");
      l.string("key");
      if (l.ok() && !listenerKeys.count((*listeners)[i]["key"].get<std::string>()))
        l.fail("key", "names no listener of the inventory");
    }
  }
  checkSlots(g, error);
}

void collect(const nlohmann::json& value, const std::string& key, std::vector<int>& fds) {
  if (value.is_object()) {
    for (const auto& [k, v] : value.items()) collect(v, k, fds);
  } else if (value.is_array()) {
    for (const auto& v : value) collect(v, key, fds);
  } else if (value.is_number_integer() && (key == "fd" || key.ends_with("_fd") || key == "pidfd")) {
    if (int fd = value.get<int>(); fd >= 0) fds.push_back(fd);
  }
}

}  // namespace

std::string validateInventory(const nlohmann::json& doc) {
  std::string error;
  Check top(doc, "", error);
  if (!top.ok()) return "the inventory is not a JSON object";
  const nlohmann::json* version = top.get("version");
  if (!version || !version->is_number_integer() || version->get<int>() != kInventoryVersion)
    return "inventory version " + (version ? version->dump() : std::string("(none)")) +
           ", this binary restores version " + std::to_string(kInventoryVersion);
  top.string("config_path");
  top.integer("next_generation", 1);
  top.string("journal");
  top.string("state_file");
  if (const nlohmann::json* e = top.array("last_errors"))
    for (const auto& line : *e)
      if (!line.is_string()) top.fail("last_errors", "expected strings");
  if (const nlohmann::json* down = top.array("servers_down"))
    for (const auto& pair : *down)
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string())
        top.fail("servers_down", "expected [backend, server] pairs");
  std::set<std::string> keys;
  if (const nlohmann::json* listeners = top.array("listeners")) {
    for (std::size_t i = 0; i < listeners->size() && error.empty(); ++i) {
      Check l((*listeners)[i], top.at("listeners", i), error);
      l.string("key");
      l.integer("fd");
      l.integer("backlog");
      if (l.ok()) keys.insert((*listeners)[i]["key"].get<std::string>());
    }
  }
  if (const nlohmann::json* zones = top.get("tls_zones")) {
    Check z(*zones, "tls_zones", error);
    if (const nlohmann::json* c = z.get("session_cache", false)) {
      Check cache(*c, "tls_zones.session_cache", error);
      cache.integer("fd");
      cache.integer("size");
    }
    if (const nlohmann::json* k = z.get("ticket_keys", false))
      Check(*k, "tls_zones.ticket_keys", error).integer("fd");
    z.integer("rotation_ms");
  }
  if (const nlohmann::json* api = top.get("api", false)) {
    Check a(*api, "api", error);
    a.integer("fd");
    a.string("path");
    a.array("uids");
  }
  if (const nlohmann::json* clients = top.array("api_clients", false)) {
    for (std::size_t i = 0; i < clients->size() && error.empty(); ++i) {
      Check c((*clients)[i], top.at("api_clients", i), error);
      c.integer("fd");
      c.integer("seq");
    }
  }
  if (const nlohmann::json* moving = top.array("migrations", false)) {
    for (std::size_t i = 0; i < moving->size() && error.empty(); ++i) {
      Check m((*moving)[i], top.at("migrations", i), error);
      for (const char* key : {"ticket", "sender", "id", "receiver", "from", "to", "sent_ms"})
        m.integer(key);
    }
  }
  if (const nlohmann::json* metrics = top.get("metrics", false)) {
    Check m(*metrics, "metrics", error);
    m.integer("fd", 0, false);
    m.string("address", false);
  }
  if (const nlohmann::json* generations = top.array("generations"))
    for (std::size_t i = 0; i < generations->size() && error.empty(); ++i)
      checkGeneration((*generations)[i], top.at("generations", i), keys, error);
  return error;
}

std::vector<int> inventoryDescriptors(const nlohmann::json& doc) {
  std::vector<int> fds;
  collect(doc, "", fds);
  return fds;
}

int runUpgradeCheck(int inventoryFd, const std::string& configPath) {
  std::string text;
  char chunk[65536];
  ssize_t n;
  while ((n = pread(inventoryFd, chunk, sizeof chunk, static_cast<off_t>(text.size()))) > 0)
    text.append(chunk, static_cast<size_t>(n));
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (std::string error = validateInventory(doc); !error.empty()) {
    std::fprintf(stderr, "inventory: %s\n", error.c_str());
    return 1;
  }
  try {
    common::loadConfigFile(configPath);
  } catch (const common::ConfigErrors& e) {
    std::fprintf(stderr, "%s", e.what());
    return 1;
  }
  return 0;
}

}  // namespace molt::master
