// A frontend's TLS configuration as OpenSSL contexts: certificates chosen by SNI, protocol
// settings, ALPN, and the shared session store.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "tls/certificates.hpp"
#include "tls/openssl.hpp"
#include "tls/settings.hpp"
#include "worker/tls/session_store.hpp"

namespace molt::worker {

// What a worker's contexts are built with: the frontend's settings and the shared zones.
struct TlsOptions : tls::TlsSettings {
  shm::SessionCache* sessionCache = nullptr;    // not owned; nullptr: no session-id resumption
  const shm::TicketKeys* ticketKeys = nullptr;  // not owned; nullptr: per-context ticket keys
  FleetSessions* fleet = nullptr;               // not owned; nullptr: no fleet tier
};

// The options a frontend's config asks for (zones left to the caller).
TlsOptions tlsOptions(const common::TlsConfig& tls, const common::FrontendConfig& frontend);

// The immutable TLS side of a frontend, shared by its connections (each TlsEngine holds a
// reference). Built on the worker's loop thread, from the bundle's bytes; not thread-safe.
class TlsContext {
 public:
  // One SSL_CTX per certificate, all with `options`. nullptr + `error` ("FILE: reason", or
  // "tls.ciphers: reason") when a certificate or a setting is refused.
  static std::shared_ptr<TlsContext> create(tls::TlsCertificateSet certificates,
                                            const TlsOptions& options, std::string& error);
  // loadCertificates + create.
  static std::shared_ptr<TlsContext> load(const std::vector<std::string>& paths,
                                          const common::FileSource& files,
                                          const TlsOptions& options, std::string& error);
  ~TlsContext();

  // A server-side SSL on the default certificate (SNI may switch it during the handshake).
  // nullptr when OpenSSL is out of memory.
  tls::SslPtr newSsl() const;
  // The certificate for `serverName`: exact name, else wildcard "*.parent", else the first.
  std::size_t certificateFor(std::string_view serverName) const noexcept;
  const std::vector<tls::TlsCertificate>& certificates() const { return certificates_; }
  // Stops using the zones (see TlsSessionStore::detach): call before unmapping them.
  void detachZones() noexcept { store_->detach(); }

 private:
  TlsContext() = default;
  static int onServerName(SSL* ssl, int* alert, void* arg);

  std::vector<tls::TlsCertificate> certificates_;
  std::vector<tls::SslCtxPtr> contexts_;
  std::map<std::string, std::size_t, std::less<>> exact_, wildcard_;
  std::unique_ptr<TlsSessionStore> store_;
};

}  // namespace molt::worker
