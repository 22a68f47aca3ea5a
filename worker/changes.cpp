// Worker: runtime-API changes from the master (control message "change"; see docs/api.md and
// common/control_messages.hpp). The master validated and resolved each one against the generation's
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

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace

void Worker::onChange(const control::Change& change) {
  std::string error;
  try {
    error = applyChange(change.op);
  } catch (const std::exception& e) {
    error = std::string("change failed: ") + e.what();
  }
  if (!error.empty()) common::log::error("change {}: {}", control::opName(change.op), error);
  control_->send(control::Changed{change.seq, error}.encode());
}

Frontend* Worker::frontendNamed(const std::string& name) const {
  for (const auto& f : frontends_)
    if (f->config().name == name) return f.get();
  return nullptr;
}

// One overload per operation of control::ChangeOp: what the worker serves with, changed.
std::string Worker::applyChange(const control::ChangeOp& op) {
  if (phase_ == ServingPhase::Draining || phase_ == ServingPhase::Stopped)
    return {};  // never applied to a draining generation (the master does not send them)
  auto backendNamed = [this](const std::string& name) -> std::shared_ptr<Backend> {
    auto it = backendsByName_.find(name);
    return it == backendsByName_.end() ? nullptr : it->second;
  };
  auto routerOf = [this](const std::string& name) -> Router* {
    Frontend* frontend = frontendNamed(name);
    auto router = frontend ? routers_.find(frontend) : routers_.end();
    return router == routers_.end() ? nullptr : router->second.get();
  };
  auto certificate = [this](const std::string& frontendName, const std::string& name,
                            const std::string& pem) -> std::string {
    Frontend* frontend = frontendNamed(frontendName);
    if (!frontend || !tlsContexts_.contains(frontend)) return "no TLS frontend " + frontendName;
    return replaceCertificate(*frontend, name, pem);
  };
  return std::visit(
      Overloaded{
          [&](const control::ServerPut& o) -> std::string {
            auto backend = backendNamed(o.backend);
            if (!backend) return "no backend " + o.backend;
            if (serverState_ && o.index >= serverState_->serverCount())
              return "server row " + std::to_string(o.index) + " is not in the zone";
            std::string error;
            auto where = common::parseAddress(o.address, common::AddressUse::Connect, error);
            if (!where) return "address: " + error;
            if (const Server* moved = backend->putServer(o.server, *where, o.weight, o.index))
              serverPool_->purge(moved);
            return {};
          },
          [&](const control::ServerRemove& o) -> std::string {
            // A server configured disabled was never held here: nothing to remove.
            if (auto backend = backendNamed(o.backend))
              if (const Server* gone = backend->removeServer(o.server)) serverPool_->purge(gone);
            return {};
          },
          [&](const control::BackendAdd& o) -> std::string {
            // Parsed by the config's own parser, as the master did.
            common::Config parsed;
            nlohmann::json request = {{"cmd", "backend.add"}, {"backend", o.backend}};
            if (std::string error = common::applyRuntimeChange(parsed, request, noFiles());
                !error.empty())
              return error;
            auto backend = std::make_shared<Backend>(std::move(parsed.backends.back()),
                                                     serverState_.get(), o.first);
            backendsByName_[backend->name()] = backend;
            backends_.push_back(std::move(backend));
            claimStatsRows();
            return {};
          },
          [&](const control::BackendDel& o) -> std::string {
            auto it = backendsByName_.find(o.backend);
            if (it == backendsByName_.end()) return {};
            for (std::size_t i = 0; i < it->second->size(); ++i)
              serverPool_->purge(&it->second->server(static_cast<int>(i)));
            std::erase(backends_, it->second);
            backendsByName_.erase(it);  // connections through it keep it until they end
            return {};
          },
          [&](const control::MapSet& o) -> std::string {
            Router* router = routerOf(o.frontend);
            if (!router) return "no http frontend " + o.frontend;
            auto backend = backendNamed(o.backend);
            if (!backend) return "no backend " + o.backend;
            return router->setMapEntry(o.route, o.host, std::move(backend));
          },
          [&](const control::MapDel& o) -> std::string {
            Router* router = routerOf(o.frontend);
            if (!router) return "no http frontend " + o.frontend;
            return router->eraseMapEntry(o.route, o.host);
          },
          [&](const control::CertSet& o) { return certificate(o.frontend, o.name, o.pem); },
          [&](const control::CertDel& o) { return certificate(o.frontend, o.name, ""); },
      },
      op);
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
