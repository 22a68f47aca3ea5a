#include "worker/tls/context.hpp"

#include <openssl/evp.h>

#include <cctype>

namespace molt::worker {

TlsOptions tlsOptions(const common::TlsConfig& tls, const common::FrontendConfig& frontend) {
  TlsOptions options;
  static_cast<tls::TlsSettings&>(options) = tls::tlsSettings(tls, frontend);
  return options;
}

std::shared_ptr<TlsContext> TlsContext::create(tls::TlsCertificateSet set,
                                               const TlsOptions& options, std::string& error) {
  if (!set.problems.empty()) {
    error = set.problems.front().message;
    return nullptr;
  }
  if (set.certificates.empty()) {
    error = "no certificate";
    return nullptr;
  }
  std::shared_ptr<TlsContext> self(new TlsContext());
  self->store_ =
      std::make_unique<TlsSessionStore>(options.sessionCache, options.ticketKeys, options.fleet);
  for (std::size_t i = 0; i < set.certificates.size(); ++i) {
    const tls::TlsCertificate& cert = set.certificates[i];
    tls::SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
      error = "SSL_CTX_new: " + tls::opensslError();
      return nullptr;
    }
    if (const char* key = tls::applySettings(ctx.get(), options, error)) {
      error = std::string(key) + ": " + error;
      return nullptr;
    }
    if (!tls::useCertificate(ctx.get(), cert, error)) return nullptr;
    self->store_->install(ctx.get(), options.tickets);
    SSL_CTX_set_tlsext_servername_callback(ctx.get(), onServerName);
    SSL_CTX_set_tlsext_servername_arg(ctx.get(), self.get());
    bool overrides = i >= set.overridingFrom;
    for (const std::string& name : cert.names) {
      auto& names = name.rfind("*.", 0) == 0 ? self->wildcard_ : self->exact_;
      std::string key = name.rfind("*.", 0) == 0 ? name.substr(2) : name;
      if (overrides) {
        names.insert_or_assign(std::move(key), i);
      } else {
        names.emplace(std::move(key), i);
      }
    }
    self->contexts_.push_back(std::move(ctx));
  }
  self->certificates_ = std::move(set.certificates);
  return self;
}

std::shared_ptr<TlsContext> TlsContext::load(const std::vector<std::string>& paths,
                                             const common::FileSource& files,
                                             const TlsOptions& options, std::string& error) {
  return create(tls::loadCertificates(paths, files), options, error);
}

// The contexts go before the store their callbacks point to.
TlsContext::~TlsContext() {
  contexts_.clear();
}

tls::SslPtr TlsContext::newSsl() const {
  tls::SslPtr ssl(SSL_new(contexts_.front().get()));
  if (ssl) SSL_set_accept_state(ssl.get());
  return ssl;
}

std::size_t TlsContext::certificateFor(std::string_view serverName) const noexcept {
  char lower[256];
  std::size_t size = serverName.size();
  if (size > 0 && serverName[size - 1] == '.') --size;
  if (size == 0 || size >= sizeof lower) return 0;
  for (std::size_t i = 0; i < size; ++i) {
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(serverName[i])));
  }
  std::string_view name(lower, size);
  if (auto it = exact_.find(name); it != exact_.end()) return it->second;
  std::size_t dot = name.find('.');
  if (dot == std::string_view::npos) return 0;
  auto it = wildcard_.find(name.substr(dot + 1));
  return it != wildcard_.end() ? it->second : 0;
}

// Runs inside the ClientHello, before session resumption is looked at.
int TlsContext::onServerName(SSL* ssl, int* alert, void* arg) {
  const auto* self = static_cast<const TlsContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_NOACK;
  std::size_t index = self->certificateFor(name);
  if (index != 0 && SSL_set_SSL_CTX(ssl, self->contexts_[index].get()) == nullptr) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace molt::worker
