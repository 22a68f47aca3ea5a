#include "worker/tls_context.hpp"

#include <openssl/evp.h>

#include <cctype>

namespace molt::worker {
namespace {

const unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// A client offering only other protocols still gets a connection, without ALPN: http/1.1 is
// what it will get anyway.
int onAlpn(SSL*, const unsigned char** out, unsigned char* outLength, const unsigned char* in,
           unsigned int inLength, void*) {
  unsigned char* selected = nullptr;
  unsigned char selectedLength = 0;
  if (SSL_select_next_proto(&selected, &selectedLength, kAlpnHttp11, sizeof kAlpnHttp11, in,
                            inLength) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  *outLength = selectedLength;
  return SSL_TLSEXT_ERR_OK;
}

// The session id context must fit 32 bytes and be the same in every worker: a digest of the
// frontend's identity.
bool setSessionIdContext(SSL_CTX* ctx, const std::string& context) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(context.data(), context.size(), digest, &size, EVP_sha256(), nullptr) != 1) {
    return false;
  }
  return SSL_CTX_set_session_id_context(ctx, digest, size) == 1;
}

// Applies the protocol settings. Returns the config key at fault (with `error` set), or nullptr.
const char* applySettings(SSL_CTX* ctx, const TlsOptions& o, std::string& error) {
  int min = o.minVersion == "TLSv1.3"   ? TLS1_3_VERSION
            : o.minVersion == "TLSv1.2" ? TLS1_2_VERSION
                                        : 0;
  if (min == 0) {
    error = "\"" + o.minVersion + "\" is not TLSv1.2 or TLSv1.3";
    return "tls.min_version";
  }
  if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    error = opensslError();
    return "tls.min_version";
  }
  if (SSL_CTX_set_cipher_list(ctx, o.ciphers.empty() ? kDefaultCiphers : o.ciphers.c_str()) != 1) {
    error = opensslError();
    return "tls.ciphers";
  }
  if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, o.ciphersuites.c_str()) != 1) {
    error = opensslError();
    return "tls.ciphersuites";
  }
  std::uint64_t options = SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                          SSL_OP_NO_COMPRESSION | (o.tickets ? 0 : SSL_OP_NO_TICKET);
  SSL_CTX_set_options(ctx, options);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_dh_auto(ctx, 1);  // DHE suites a user lists get RFC 7919 groups
  SSL_CTX_set_timeout(ctx, static_cast<long>(o.sessionTimeout.count()));
  // Stateful TLS 1.3 tickets each take a cache entry: one per connection is enough.
  if (!o.tickets) SSL_CTX_set_num_tickets(ctx, 1);
  if (o.alpnHttp11) SSL_CTX_set_alpn_select_cb(ctx, onAlpn, nullptr);
  if (!setSessionIdContext(ctx, o.sessionIdContext)) {
    error = opensslError();
    return "tls";
  }
  return nullptr;
}

bool useCertificate(SSL_CTX* ctx, const TlsCertificate& cert, std::string& error) {
  bool ok = SSL_CTX_use_certificate(ctx, cert.cert.get()) == 1 &&
            SSL_CTX_use_PrivateKey(ctx, cert.key.get()) == 1;
  for (std::size_t i = 0; ok && i < cert.chain.size(); ++i) {
    ok = SSL_CTX_add1_chain_cert(ctx, cert.chain[i].get()) == 1;
  }
  ok = ok && SSL_CTX_check_private_key(ctx) == 1;
  if (!ok) error = cert.file + ": " + opensslError();
  return ok;
}

std::string entryKey(std::size_t entry) {
  return "certificates[" + std::to_string(entry) + "]";
}

}  // namespace

TlsOptions tlsOptions(const common::TlsConfig& tls, const common::FrontendConfig& frontend) {
  TlsOptions o;
  o.minVersion = tls.minVersion;
  o.ciphers = tls.ciphers;
  o.ciphersuites = tls.ciphersuites;
  o.sessionTimeout = std::max(std::chrono::seconds(1),
                              std::chrono::duration_cast<std::chrono::seconds>(tls.sessionTimeout));
  o.tickets = tls.tickets;
  o.alpnHttp11 = frontend.mode == common::Mode::Http;
  o.sessionIdContext = "molt frontend " + frontend.name;
  return o;
}

std::vector<TlsConfigProblem> validateTls(const common::FrontendConfig& frontend,
                                          const common::TlsConfig& tls,
                                          const common::FileSource& files,
                                          std::vector<std::string>* filesRead) {
  std::vector<TlsConfigProblem> problems;
  TlsCertificateSet set = loadCertificates(frontend.certificates, files);
  if (filesRead != nullptr) {
    filesRead->insert(filesRead->end(), set.filesRead.begin(), set.filesRead.end());
  }
  for (TlsCertificateProblem& p : set.problems) {
    problems.push_back({entryKey(p.entry), std::move(p.message)});
  }
  TlsOptions options = tlsOptions(tls, frontend);
  std::string error;
  SslCtxPtr probe(SSL_CTX_new(TLS_server_method()));
  if (const char* key = applySettings(probe.get(), options, error)) {
    problems.push_back({key, error});
    return problems;
  }
  for (const TlsCertificate& cert : set.certificates) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    applySettings(ctx.get(), options, error);
    if (!useCertificate(ctx.get(), cert, error)) problems.push_back({entryKey(cert.entry), error});
  }
  return problems;
}

std::shared_ptr<TlsContext> TlsContext::create(TlsCertificateSet set, const TlsOptions& options,
                                               std::string& error) {
  if (!set.problems.empty()) {
    error = set.problems.front().message;
    return nullptr;
  }
  if (set.certificates.empty()) {
    error = "no certificate";
    return nullptr;
  }
  std::shared_ptr<TlsContext> self(new TlsContext());
  self->store_ = std::make_unique<TlsSessionStore>(options.sessionCache, options.ticketKeys);
  for (std::size_t i = 0; i < set.certificates.size(); ++i) {
    const TlsCertificate& cert = set.certificates[i];
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
      error = "SSL_CTX_new: " + opensslError();
      return nullptr;
    }
    if (const char* key = applySettings(ctx.get(), options, error)) {
      error = std::string(key) + ": " + error;
      return nullptr;
    }
    if (!useCertificate(ctx.get(), cert, error)) return nullptr;
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
  return create(loadCertificates(paths, files), options, error);
}

// The contexts go before the store their callbacks point to.
TlsContext::~TlsContext() {
  contexts_.clear();
}

SslPtr TlsContext::newSsl() const {
  SslPtr ssl(SSL_new(contexts_.front().get()));
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
