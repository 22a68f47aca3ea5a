// Test PKI generated with OpenSSL at test time, and an in-memory TLS client.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/bundle.hpp"
#include "tls/openssl.hpp"
#include "worker/tls/engine.hpp"

namespace molt::worker::test {

// A root CA and an intermediate issuing EC P-256 (or RSA) leaf certificates.
class TestPki {
 public:
  TestPki();
  struct Leaf {
    std::string cert, chain, key;  // PEM: the leaf, the intermediate, the private key
    std::string combined() const { return cert + chain + key; }
  };
  // A leaf with subjectAltName DNS `names` (none: CN only) and subject CN `cn`.
  Leaf issue(const std::vector<std::string>& names, const std::string& cn, bool rsa = false);
  X509* root() const { return root_.get(); }

 private:
  tls::EvpPkeyPtr rootKey_, intermediateKey_;
  tls::X509Ptr root_, intermediate_;
  long serial_ = 10;
};

std::string pemOf(X509* cert);
std::string pemOf(EVP_PKEY* key);
// The subject CN of the certificate the peer of `engine` presented.
std::string peerCommonName(const TlsEngine& engine);

// In-memory files served like a worker's handover bundle.
struct TestFiles {
  common::Bundle bundle;
  explicit TestFiles(std::map<std::string, std::string> files);
  common::FileSource source() const { return bundle.fileSource(); }
};

// A client context trusting the test root; remembers the last session the server gave it.
class TestClient {
 public:
  explicit TestClient(const TestPki& pki, int maxVersion = TLS1_3_VERSION);
  // A client engine offering `sni` (if any) and `alpn` (wire format, if any), resuming
  // `session` (if any), verifying the chain and `sni` when `verify`.
  std::unique_ptr<TlsEngine> connect(std::string_view sni = "", SSL_SESSION* session = nullptr,
                                     std::string_view alpn = "", bool verify = false);
  SSL_SESSION* lastSession() const { return last_.get(); }
  // Forgets the last session (so a later one is known to be new).
  tls::SslSessionPtr takeSession() { return std::move(last_); }

 private:
  static int onNewSession(SSL* ssl, SSL_SESSION* session);
  tls::SslCtxPtr ctx_;
  tls::SslSessionPtr last_;
};

// The buffers every test engine keeps its ciphertext in (single-threaded, like a worker's).
BufferPool& testPool();

// Moves ciphertext both ways until both handshakes are done (or one fails), then lets the client
// read post-handshake messages (TLS 1.3 tickets). True when both are Established.
bool establish(TlsEngine& client, TlsEngine& server);
// Moves all pending ciphertext from `from` to `to`.
void transfer(TlsEngine& from, TlsEngine& to);

}  // namespace molt::worker::test
