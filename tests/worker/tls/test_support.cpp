#include "tests/worker/tls/test_support.hpp"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <stdexcept>

namespace molt::worker::test {
namespace {

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string(what) + ": " + tls::opensslError());
}

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// An unsigned certificate for `key` named `cn`, issued by `issuer` (nullptr: self-issued).
tls::X509Ptr makeCert(EVP_PKEY* key, const std::string& cn, X509* issuer, long serial) {
  tls::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  addExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
  return cert;
}

void sign(X509* cert, EVP_PKEY* key) {
  check(X509_sign(cert, key, EVP_sha256()) > 0, "X509_sign");
}

}  // namespace

TestPki::TestPki() : rootKey_(EVP_EC_gen("P-256")), intermediateKey_(EVP_EC_gen("P-256")) {
  root_ = makeCert(rootKey_.get(), "molt test root", nullptr, 1);
  addExtension(root_.get(), root_.get(), NID_basic_constraints, "critical,CA:TRUE");
  addExtension(root_.get(), root_.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  sign(root_.get(), rootKey_.get());
  intermediate_ = makeCert(intermediateKey_.get(), "molt test intermediate", root_.get(), 2);
  addExtension(intermediate_.get(), root_.get(), NID_basic_constraints, "critical,CA:TRUE");
  addExtension(intermediate_.get(), root_.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  addExtension(intermediate_.get(), root_.get(), NID_authority_key_identifier, "keyid:always");
  sign(intermediate_.get(), rootKey_.get());
}

TestPki::Leaf TestPki::issue(const std::vector<std::string>& names, const std::string& cn,
                             bool rsa) {
  tls::EvpPkeyPtr key(rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
  tls::X509Ptr cert = makeCert(key.get(), cn, intermediate_.get(), ++serial_);
  std::string sans;
  for (const std::string& name : names) sans += (sans.empty() ? "DNS:" : ",DNS:") + name;
  if (!sans.empty()) addExtension(cert.get(), intermediate_.get(), NID_subject_alt_name, sans);
  addExtension(cert.get(), intermediate_.get(), NID_authority_key_identifier, "keyid:always");
  addExtension(cert.get(), intermediate_.get(), NID_ext_key_usage, "serverAuth");
  sign(cert.get(), intermediateKey_.get());
  return {pemOf(cert.get()), pemOf(intermediate_.get()), pemOf(key.get())};
}

std::string pemOf(X509* cert) {
  tls::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string pemOf(EVP_PKEY* key) {
  tls::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string peerCommonName(const TlsEngine& engine) {
  X509* cert = SSL_get0_peer_certificate(engine.ssl());
  if (cert == nullptr) return "";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  return cn;
}

TestFiles::TestFiles(std::map<std::string, std::string> files) {
  for (auto& [path, data] : files) bundle.files.emplace(path, std::move(data));
}

TestClient::TestClient(const TestPki& pki, int maxVersion)
    : ctx_(SSL_CTX_new(TLS_client_method())) {
  SSL_CTX_set_max_proto_version(ctx_.get(), maxVersion);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), pki.root());
  SSL_CTX_set_session_cache_mode(ctx_.get(),
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx_.get(), onNewSession);
  SSL_CTX_set_app_data(ctx_.get(), this);
}

int TestClient::onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<TestClient*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  self->last_.reset(session);
  return 1;  // we keep the reference
}

std::unique_ptr<TlsEngine> TestClient::connect(std::string_view sni, SSL_SESSION* session,
                                               std::string_view alpn, bool verify) {
  tls::SslPtr ssl(SSL_new(ctx_.get()));
  SSL_set_connect_state(ssl.get());
  std::string name(sni);
  if (!name.empty()) SSL_set_tlsext_host_name(ssl.get(), name.c_str());
  if (session != nullptr) SSL_set_session(ssl.get(), session);
  if (!alpn.empty()) {
    SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(alpn.data()),
                        static_cast<unsigned>(alpn.size()));
  }
  if (verify) {
    SSL_set_verify(ssl.get(), SSL_VERIFY_PEER, nullptr);
    SSL_set1_host(ssl.get(), name.c_str());
  }
  return std::make_unique<TlsEngine>(testPool(), std::move(ssl));
}

BufferPool& testPool() {
  static BufferPool pool;
  return pool;
}

void transfer(TlsEngine& from, TlsEngine& to) {
  char buffer[16384];
  while (std::size_t n = from.takeOutput(buffer)) to.feed({buffer, n});
}

bool establish(TlsEngine& client, TlsEngine& server) {
  for (int round = 0; round < 10; ++round) {
    client.handshake();
    transfer(client, server);
    server.handshake();
    transfer(server, client);
    if (client.phase() != TlsPhase::Handshaking && server.phase() != TlsPhase::Handshaking) break;
  }
  client.handshake();
  char none[1];
  client.read(none);  // takes in NewSessionTicket messages, if any
  transfer(client, server);
  return client.phase() == TlsPhase::Established && server.phase() == TlsPhase::Established;
}

}  // namespace molt::worker::test
