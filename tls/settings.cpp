#include "tls/settings.hpp"

#include <openssl/evp.h>

#include "tls/openssl.hpp"

namespace molt::tls {
namespace {

const unsigned char kAlpnHttp11[] = "\x08http/1.1";

// The connection's protocols (setAlpn), else http/1.1 alone. The first one the server lists that
// the client offers wins. A client offering only other protocols still gets a connection,
// without ALPN: HTTP/1.1 is what it will get then.
int onAlpn(SSL* ssl, const unsigned char** out, unsigned char* outLength, const unsigned char* in,
           unsigned int inLength, void*) {
  const auto* own = static_cast<const AlpnList*>(SSL_get_ex_data(ssl, alpnIndex()));
  const unsigned char* list = own ? own->wire : kAlpnHttp11;
  unsigned length = own ? own->length : sizeof kAlpnHttp11 - 1;
  unsigned char* selected = nullptr;
  unsigned char selectedLength = 0;
  if (SSL_select_next_proto(&selected, &selectedLength, list, length, in, inLength) !=
      OPENSSL_NPN_NEGOTIATED) {
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

std::string entryKey(std::size_t entry) {
  return "certificates[" + std::to_string(entry) + "]";
}

}  // namespace

int alpnIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

const AlpnList& alpnFor(const common::BindConfig& bind) {
  static const AlpnList kH2First{reinterpret_cast<const unsigned char*>("\x02h2\x08http/1.1"), 12};
  static const AlpnList kHttp11First{reinterpret_cast<const unsigned char*>("\x08http/1.1\x02h2"),
                                     12};
  static const AlpnList kH2Only{reinterpret_cast<const unsigned char*>("\x02h2"), 3};
  static const AlpnList kHttp11Only{kAlpnHttp11, sizeof kAlpnHttp11 - 1};
  if (bind.h2 && bind.http11) return bind.preferH2 ? kH2First : kHttp11First;
  return bind.h2 ? kH2Only : kHttp11Only;
}

void setAlpn(SSL* ssl, const AlpnList& list) {
  SSL_set_ex_data(ssl, alpnIndex(), const_cast<AlpnList*>(&list));
}

const char* applySettings(SSL_CTX* ctx, const TlsSettings& o, std::string& error) {
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
  // The client's order by default: every suite of the default list is strong, and a client
  // without AES instructions puts ChaCha20-Poly1305 first (Mozilla's "intermediate" advice).
  std::uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                          (o.tickets ? 0 : SSL_OP_NO_TICKET) |
                          (o.preferServerCiphers ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0);
  SSL_CTX_set_options(ctx, options);
  // The chain sent is the certificate file's, as loaded (useCertificate): never one OpenSSL
  // would otherwise build from the trust store on every handshake of a file with none.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
  SSL_CTX_set_dh_auto(ctx, 1);  // DHE suites a user lists get RFC 7919 groups
  SSL_CTX_set_timeout(ctx, static_cast<long>(o.sessionTimeout.count()));
  // Stateful TLS 1.3 tickets each take a cache entry: one per connection is enough.
  if (!o.tickets) SSL_CTX_set_num_tickets(ctx, 1);
  if (o.alpn) SSL_CTX_set_alpn_select_cb(ctx, onAlpn, nullptr);
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

TlsSettings tlsSettings(const common::TlsConfig& tls, const common::FrontendConfig& frontend) {
  TlsSettings o;
  o.minVersion = tls.minVersion;
  o.ciphers = tls.ciphers;
  o.ciphersuites = tls.ciphersuites;
  o.sessionTimeout = std::max(std::chrono::seconds(1),
                              std::chrono::duration_cast<std::chrono::seconds>(tls.sessionTimeout));
  o.tickets = tls.tickets;
  o.preferServerCiphers = tls.preferServerCiphers;
  o.alpn = frontend.mode == common::Mode::Http;
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
  TlsSettings options = tlsSettings(tls, frontend);
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

}  // namespace molt::tls
