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
#include "worker/tls_certificates.hpp"
#include "worker/tls_openssl.hpp"
#include "worker/tls_session_store.hpp"

namespace molt::worker {

// TLS 1.2 ciphers used when "tls.ciphers" is empty: ECDHE with AEAD only (Mozilla
// "intermediate" without DHE).
inline constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct TlsOptions {
  std::string minVersion = "TLSv1.2";  // or "TLSv1.3"; TLS 1.3 is always the maximum
  std::string ciphers;                 // TLS 1.2 list; empty: kDefaultCiphers
  std::string ciphersuites;            // TLS 1.3 suites; empty: OpenSSL's default
  std::chrono::seconds sessionTimeout{300};
  bool tickets = true;     // false: SSL_OP_NO_TICKET (session ids; TLS 1.3 stateful tickets)
  bool alpnHttp11 = true;  // select "http/1.1" when the client offers it
  // Sessions resume only where this matches (OpenSSL's session id context): the frontend.
  std::string sessionIdContext;
  shm::SessionCache* sessionCache = nullptr;    // not owned; nullptr: no session-id resumption
  const shm::TicketKeys* ticketKeys = nullptr;  // not owned; nullptr: per-context ticket keys
};

// The options a frontend's config asks for (zones left to the caller).
TlsOptions tlsOptions(const common::TlsConfig& tls, const common::FrontendConfig& frontend);

// One problem found by validateTls, for the config checker: `key` is "certificates[2]"
// (relative to the frontend) or "tls.ciphers" / "tls.ciphersuites" / "tls.min_version".
struct TlsConfigProblem {
  std::string key;
  std::string message;
};

// For the master and `molt -c`: loads every certificate of `frontend` and applies the `tls`
// settings exactly as a worker will, without building a server. Every path read (key files
// included) is appended to `filesRead` when given: they belong in the handover bundle.
std::vector<TlsConfigProblem> validateTls(const common::FrontendConfig& frontend,
                                          const common::TlsConfig& tls,
                                          const common::FileSource& files,
                                          std::vector<std::string>* filesRead = nullptr);

// The immutable TLS side of a frontend, shared by its connections (each TlsEngine holds a
// reference). Built on the worker's loop thread, from the bundle's bytes; not thread-safe.
class TlsContext {
 public:
  // One SSL_CTX per certificate, all with `options`. nullptr + `error` ("FILE: reason", or
  // "tls.ciphers: reason") when a certificate or a setting is refused.
  static std::shared_ptr<TlsContext> create(TlsCertificateSet certificates,
                                            const TlsOptions& options, std::string& error);
  // loadCertificates + create.
  static std::shared_ptr<TlsContext> load(const std::vector<std::string>& paths,
                                          const common::FileSource& files,
                                          const TlsOptions& options, std::string& error);
  ~TlsContext();

  // A server-side SSL on the default certificate (SNI may switch it during the handshake).
  // nullptr when OpenSSL is out of memory.
  SslPtr newSsl() const;
  // The certificate for `serverName`: exact name, else wildcard "*.parent", else the first.
  std::size_t certificateFor(std::string_view serverName) const noexcept;
  const std::vector<TlsCertificate>& certificates() const { return certificates_; }
  // Stops using the zones (see TlsSessionStore::detach): call before unmapping them.
  void detachZones() noexcept { store_->detach(); }

 private:
  TlsContext() = default;
  static int onServerName(SSL* ssl, int* alert, void* arg);

  std::vector<TlsCertificate> certificates_;
  std::vector<SslCtxPtr> contexts_;
  std::map<std::string, std::size_t, std::less<>> exact_, wildcard_;
  std::unique_ptr<TlsSessionStore> store_;
};

}  // namespace molt::worker
