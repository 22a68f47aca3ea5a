// Test support: a blocking OpenSSL client over loopback, for end-to-end TLS tests.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/unique_fd.hpp"

namespace molt::test {

struct TlsSessionDeleter {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using TlsSession = std::unique_ptr<SSL_SESSION, TlsSessionDeleter>;

struct TlsClientOptions {
  std::string serverName;         // SNI; empty: none sent
  std::string version = "";       // "TLSv1.2" or "TLSv1.3" to pin; empty: best
  bool tickets = true;            // false: the client does not ask for tickets
  SSL_SESSION* resume = nullptr;  // offer this session
};

// One TLS connection to 127.0.0.1:port; every call blocks, with 10 s socket timeouts.
class TlsClient {
 public:
  TlsClient(std::uint16_t port, const TlsClientOptions& options);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool connected() const { return connected_; }
  const std::string& error() const { return error_; }
  bool resumed() const;
  std::string version() const;
  std::string alpn() const;
  // The common name of the certificate the server sent.
  std::string peerCommonName() const;
  bool send(const std::string& data);
  std::string receive(std::size_t n);  // exactly n bytes, fewer on EOF/error
  // The server's close_notify arrived (receive() returned short because of it).
  bool peerClosedCleanly() const;
  // Sends close_notify and stops sending.
  void closeSending();
  // Stops sending without close_notify (a bare TCP half-close).
  void closeSocketSending();
  // How many bytes the server sends until it closes, read off the socket undecrypted (after
  // closeSocketSending: OpenSSL would answer the close with an alert on a socket that cannot send).
  std::size_t rawBytesUntilClose();
  // The session to resume later (after reading something: TLS 1.3 tickets arrive with data).
  TlsSession session() const;

 private:
  common::UniqueFd fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool connected_ = false;
  std::string error_;
};

// Writes a self-signed certificate + key PEM for `commonName` (with it as the only DNS SAN) into
// `path`, using the openssl command. Returns false when openssl failed.
bool makeCertificate(const std::string& path, const std::string& commonName);

}  // namespace molt::test
