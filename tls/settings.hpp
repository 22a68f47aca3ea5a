// A frontend's TLS protocol settings, applied to OpenSSL server contexts the same way by the
// master (config checks) and by workers (the contexts they serve with).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "tls/certificates.hpp"

namespace molt::tls {

// TLS 1.2 ciphers used when "tls.ciphers" is empty: ECDHE with AEAD only (Mozilla
// "intermediate" without DHE).
inline constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct TlsSettings {
  std::string minVersion = "TLSv1.2";  // or "TLSv1.3"; TLS 1.3 is always the maximum
  std::string ciphers;                 // TLS 1.2 list; empty: kDefaultCiphers
  std::string ciphersuites;            // TLS 1.3 suites; empty: OpenSSL's default
  std::chrono::seconds sessionTimeout{300};
  bool tickets = true;  // false: SSL_OP_NO_TICKET (session ids; TLS 1.3 stateful tickets)
  // The server's order of ciphers and signature algorithms (SSL_OP_CIPHER_SERVER_PREFERENCE)
  // instead of the client's.
  bool preferServerCiphers = false;
  // Answer ALPN: with the connection's list (setAlpn), else "http/1.1" when the client offers it.
  bool alpn = true;
  // Sessions resume only where this matches (OpenSSL's session id context): the frontend.
  std::string sessionIdContext;
};

// A bind's application protocols, in ALPN wire format (static storage).
struct AlpnList {
  const unsigned char* wire;
  unsigned length;
};
const AlpnList& alpnFor(const common::BindConfig& bind);
// Makes `ssl` (an accepted connection) answer ALPN with `list`.
void setAlpn(SSL* ssl, const AlpnList& list);
int alpnIndex();

// The settings a frontend's config asks for.
TlsSettings tlsSettings(const common::TlsConfig& tls, const common::FrontendConfig& frontend);

// Applies `settings` to `ctx`. Returns the config key at fault ("tls.ciphers", with `error`
// set), or nullptr.
const char* applySettings(SSL_CTX* ctx, const TlsSettings& settings, std::string& error);

// Installs `cert` (leaf, key, chain) in `ctx` and checks the key matches. False with `error`
// ("FILE: reason") when OpenSSL refuses it.
bool useCertificate(SSL_CTX* ctx, const TlsCertificate& cert, std::string& error);

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

}  // namespace molt::tls
