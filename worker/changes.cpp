// Worker: runtime-API changes from the master (control message "change"; see docs/api.md and
// common/control.hpp). The master validated and resolved each one against the generation's
// config, so a worker applies it to what it serves with and answers "changed".
#include "common/log.hpp"
#include "common/runtime_change.hpp"
#include "worker/worker.hpp"

namespace molt::worker {
namespace {

// A backend object reads no file.
common::FileSource noFiles() {
  common::FileSource files;
  files.read = [](const std::string&, std::string& error) -> std::optional<std::string> {
    error = "no file access here";
    return std::nullopt;
  };
  files.list = [](const std::string&, std::string& error) {
    error = "no file access here";
    return std::optional<std::vector<std::string>>();
  };
  return files;
}

}  // namespace

void Worker::onChange(common::ControlMessage& message) {
  std::string error;
  try {
    error = applyChange(message.body);
  } catch (const nlohmann::json::exception& e) {
    error = std::string("malformed change: ") + e.what();
  }
  if (!error.empty())
    common::log::error("change {}: {}", message.body.value("op", std::string("?")), error);
  control_->send({{"type", "changed"}, {"seq", message.body.value("seq", 0u)}, {"error", error}});
}

Frontend* Worker::frontendNamed(const std::string& name) const {
  for (const auto& f : frontends_)
    if (f->config().name == name) return f.get();
  return nullptr;
}

std::string Worker::applyChange(const nlohmann::json& change) {
  if (phase_ == WorkerPhase::Draining || phase_ == WorkerPhase::Stopped)
    return {};  // never applied to a draining generation (the master does not send them)
  const std::string op = change.at("op").get<std::string>();
  auto backendNamed = [this](const std::string& name) -> std::shared_ptr<Backend> {
    auto it = backendsByName_.find(name);
    return it == backendsByName_.end() ? nullptr : it->second;
  };
  auto address = [](const nlohmann::json& text, std::string& error) {
    return common::parseAddress(text.get<std::string>(), common::AddressUse::Connect, error);
  };

  if (op == "server.put") {
    auto backend = backendNamed(change.at("backend").get<std::string>());
    if (!backend) return "no backend " + change.at("backend").get<std::string>();
    std::string error;
    auto where = address(change.at("address"), error);
    if (!where) return "address: " + error;
    backend->putServer(change.at("server").get<std::string>(), *where,
                       change.at("weight").get<unsigned>(),
                       change.at("index").get<std::uint64_t>());
    return {};
  }
  if (op == "server.remove") {
    auto backend = backendNamed(change.at("backend").get<std::string>());
    if (!backend || !backend->removeServer(change.at("server").get<std::string>()))
      return {};  // a server configured disabled was never held here
    return {};
  }
  if (op == "backend.add") {
    // The backend object as the API took it, parsed by the config's own parser; its servers'
    // rows in the zone start at `first`.
    common::Config parsed;
    nlohmann::json request = {{"cmd", "backend.add"}, {"backend", change.at("backend")}};
    if (std::string error = common::applyRuntimeChange(parsed, request, noFiles()); !error.empty())
      return error;
    auto backend = std::make_shared<Backend>(std::move(parsed.backends.back()), serverState_.get(),
                                             change.at("first").get<std::uint64_t>());
    backendsByName_[backend->name()] = backend;
    backends_.push_back(std::move(backend));
    return {};
  }
  if (op == "backend.del") {
    auto it = backendsByName_.find(change.at("backend").get<std::string>());
    if (it == backendsByName_.end()) return {};
    std::erase(backends_, it->second);
    backendsByName_.erase(it);  // connections through it keep it until they end
    return {};
  }
  if (op == "map.set" || op == "map.del") {
    Frontend* frontend = frontendNamed(change.at("frontend").get<std::string>());
    auto router = frontend ? routers_.find(frontend) : routers_.end();
    if (router == routers_.end()) return "no http frontend " + change.at("frontend").dump();
    auto route = change.at("route").get<std::size_t>();
    std::string host = change.at("host").get<std::string>();
    if (op == "map.del") return router->second->eraseMapEntry(route, host);
    auto backend = backendNamed(change.at("backend").get<std::string>());
    if (!backend) return "no backend " + change.at("backend").get<std::string>();
    return router->second->setMapEntry(route, host, std::move(backend));
  }
  if (op == "cert.set" || op == "cert.del") {
    Frontend* frontend = frontendNamed(change.at("frontend").get<std::string>());
    auto context = frontend ? tlsContexts_.find(frontend) : tlsContexts_.end();
    if (context == tlsContexts_.end()) return "no TLS frontend " + change.at("frontend").dump();
    return replaceCertificate(*frontend, change.at("name").get<std::string>(),
                              op == "cert.set" ? change.at("pem").get<std::string>() : "");
  }
  return "unknown change '" + op + "'";
}

// TLS contexts are immutable: a new one replaces the frontend's, sharing the OpenSSL objects
// of every certificate it keeps. Connections already open keep the context they started with.
std::string Worker::replaceCertificate(Frontend& frontend, const std::string& name,
                                       const std::string& pem) {
  const TlsContext& current = *tlsContexts_.at(&frontend);
  const std::string file = tls::runtimeCertificateFile(name);
  tls::TlsCertificateSet set;
  for (const tls::TlsCertificate& c : current.certificates())
    if (c.file != file && !c.file.starts_with("runtime:"))
      set.certificates.push_back(tls::shareCertificate(c));
  set.overridingFrom = set.certificates.size();
  for (const tls::TlsCertificate& c : current.certificates())
    if (c.file != file && c.file.starts_with("runtime:"))
      set.certificates.push_back(tls::shareCertificate(c));
  if (!pem.empty()) {
    tls::TlsCertificateSet added = tls::loadRuntimeCertificate(name, pem);
    if (!added.problems.empty()) return added.problems.front().message;
    for (auto& c : added.certificates) set.certificates.push_back(std::move(c));
  }
  std::string error;
  auto context = TlsContext::create(std::move(set), tlsOptions_.at(&frontend), error);
  if (!context) return error;
  tlsContexts_[&frontend] = std::move(context);
  return {};
}

}  // namespace molt::worker
